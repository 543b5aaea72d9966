from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.models import ModelVersion
from governance.selectors import model_version_lineage
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


def _child(parent: ModelVersion, name: str) -> ModelVersion:
    return ModelVersionFactory(
        name=name,
        kind=ModelVersion.Kind.FINETUNED,
        parent=parent,
        dataset=parent.dataset,
    )


@pytest.fixture
def tree():
    base = ModelVersionFactory(name="base")
    a = _child(base, "a")
    a1 = _child(a, "a1")
    b = _child(base, "b")
    unrelated = ModelVersionFactory(name="other-base", dataset=base.dataset)
    return {"base": base, "a": a, "a1": a1, "b": b, "unrelated": unrelated}


def _names(node) -> dict:
    return {node.name: [_names(child) for child in node.children]}


def test_lineage_holds_ancestors_and_descendants_in_one_query(tree):
    with CaptureQueriesContext(connection) as queries:
        root = model_version_lineage(tree["a"].pk)
    assert len(queries) == 1
    # a's ancestors (base) and descendants (a1); b is a sibling branch, not lineage.
    assert _names(root) == {"base": [{"a": [{"a1": []}]}]}
    focus = root.children[0]
    assert focus.is_focus and focus.depth == 0 and root.depth == -1


def test_lineage_of_a_base_model_shows_every_descendant(tree):
    root = model_version_lineage(tree["base"].pk)
    assert _names(root) == {"base": [{"a": [{"a1": []}]}, {"b": []}]}


def test_a_base_model_may_not_have_a_parent_nor_a_finetuned_one_lack_one(tree):
    from django.core.exceptions import ValidationError

    orphan = ModelVersion(
        name="orphan", kind=ModelVersion.Kind.FINETUNED, dataset=tree["base"].dataset
    )
    with pytest.raises(ValidationError, match="parent_matches_kind"):
        orphan.full_clean()


def test_the_admin_page_draws_the_lineage_tree(admin_client, tree):
    response = admin_client.get(
        f"/admin/governance/modelversion/{tree['a'].pk}/change/"
    )
    page = response.content.decode()
    start = page.index('<ul class="lineage-tree">')
    tree_html = page[start : page.index("</div>", start)]
    assert tree_html.index(">base<") < tree_html.index(">a<") < tree_html.index(">a1<")
    assert ">b<" not in tree_html


def test_model_version_list_runs_the_same_queries_for_few_and_many_rows(
    admin_client, tree
):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert (
                admin_client.get("/admin/governance/modelversion/").status_code == 200
            )
        return len(queries)

    few = count()
    for i in range(30):
        _child(tree["a1"], f"deep-{i}")
    assert count() == few


def test_the_version_summary_charts_the_lineage_with_layers_and_data(
    admin_client, tree
):
    """The summary's tree: every version of the lineage in a box, with the layers
    it trained and froze (counted from its inventory) and the domain it learned
    from; the sibling branch stays out."""
    from tests.factories import DomainFactory

    a = tree["a"]
    a.layers = [
        {"name": "hidden.0", "trainable": False},
        {"name": "hidden.1", "trainable": False},
        {"name": "hidden.2", "trainable": True},
        {"name": "out", "trainable": True},
    ]
    a.trained_on = DomainFactory(dataset=a.dataset, name="target-region")
    a.save(update_fields=["layers", "trained_on"])
    page = admin_client.get(f"/admin/governance/modelversion/{a.pk}/change/")
    html = page.content.decode()
    start = html.index('<section id="summary-lineage"')
    section = html[start : html.index("</section>", start)]
    assert "<svg" in section
    desc = section[section.index("<desc>") : section.index("</desc>")]
    assert "a (finetuned · draft, 2 of 4 layers trained, 2 frozen, " in desc
    assert "data: target-region) derived from base" in desc
    for name in ("base", "a", "a1"):
        assert f">{name}<" in section
    assert ">b<" not in section
