"""Section 2, lineage: the version's ancestry, its fine-tuning runs, the tree."""

from __future__ import annotations

from governance.models import FineTuneRun, ModelVersion
from governance.selectors import LineageNode
from reports import charts


def _flatten(node: LineageNode | None) -> list[LineageNode]:
    if node is None:
        return []
    out = [node]
    for child in node.children:
        out.extend(_flatten(child))
    return out


def _runs_in_lineage(version: ModelVersion) -> list[FineTuneRun]:
    """The fine-tuning steps from the base model down to this version."""
    chain: list[ModelVersion] = []
    node: ModelVersion | None = version
    while node is not None and node.parent_id:
        chain.append(node)
        node = node.parent
    runs = FineTuneRun.objects.filter(produced_version__in=chain).select_related(
        "parent", "source_domain", "target_domain", "produced_version", "shift_report"
    )
    return sorted(runs, key=lambda run: run.created_at)


def _lineage_chart(root: LineageNode | None, version: ModelVersion) -> str | None:
    nodes = _flatten(root)
    if not nodes:
        return None
    svg = charts.lineage_tree(
        [(n.id, n.parent_id, n.name, f"{n.kind} · {n.status}") for n in nodes],
        title=f"Lineage of {version.name}",
        highlight=version.pk,
    )
    return charts.embed(svg, alt=f"Lineage of {version.name}")


def _lineage_names(version: ModelVersion) -> list[str]:
    chain = [version.name]
    node = version
    while node.parent_id:
        node = node.parent
        chain.append(node.name)
    return list(reversed(chain))
