"""Section 2, lineage: the version's ancestry, its fine-tuning runs, the tree."""

from __future__ import annotations

from governance.models import FineTuneRun, ModelVersion
from governance.selectors import LineageNode, model_version_lineage
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


def _layers_line(layers: list[dict[str, object]]) -> str:
    """ "2 of 4 layers trained, 2 frozen" from a fine-tuned version's inventory; a
    base model's layers were all trained, and an inventory without the flag (an
    external model) says nothing about it."""
    flags = [layer.get("trainable") for layer in layers if isinstance(layer, dict)]
    if not flags or any(flag is None for flag in flags):
        return f"{len(flags)} layers" if flags else ""
    trained = sum(1 for flag in flags if flag)
    if trained == len(flags):
        return f"all {trained} layers trained"
    return f"{trained} of {len(flags)} layers trained, {len(flags) - trained} frozen"


def lineage_detail_chart(version: ModelVersion) -> str | None:
    """The version's lineage tree for its admin page: each box names the kind
    and status, the layers trained and frozen, and the domain trained on, read
    from the versions' records (one query for the whole tree). Inline SVG, so
    the browser test can measure every line against its box."""
    nodes = _flatten(model_version_lineage(version.pk))
    if not nodes:
        return None
    records = {
        v.pk: v
        for v in ModelVersion.objects.filter(pk__in=[n.id for n in nodes])
        .select_related("trained_on")
        .only("pk", "layers", "trained_on__name")
    }

    def sublabel(node: LineageNode) -> str:
        record = records.get(node.id)
        lines = [f"{node.kind} · {node.status}"]
        if record is not None:
            lines.append(_layers_line(record.layers or []))
            if record.trained_on is not None:
                lines.append(f"data: {record.trained_on.name}")
        return "\n".join(line for line in lines if line)

    title = f"Lineage of {version.name}: base model to fine-tuned versions"
    svg = charts.lineage_tree(
        [(n.id, n.parent_id, n.name, sublabel(n)) for n in nodes],
        title=title,
        highlight=version.pk,
        box_width=170,
        max_width=900,
    )
    return charts.embed(
        svg,
        inline=True,
        alt=title,
        caption=f"{title} ({len(nodes)} version{'s' if len(nodes) != 1 else ''}; "
        "this one outlined)",
    )


def _lineage_names(version: ModelVersion) -> list[str]:
    chain = [version.name]
    node = version
    while node.parent_id:
        node = node.parent
        chain.append(node.name)
    return list(reversed(chain))
