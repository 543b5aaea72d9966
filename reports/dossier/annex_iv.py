"""Section 9: EU AI Act Annex IV point by point, from records or marked missing."""

from __future__ import annotations

from typing import Any

from governance.models import AISystem, FineTuneRun, ModelVersion
from reports.dossier.lineage import _lineage_names
from workers.ml.explain.phrasing import feature_label

NOT_RECORDED = "not recorded in this system"


def _item(
    label: str, text: str = "", missing: str = "", *, partial: str = ""
) -> dict[str, str]:
    """One fact of a point: its text, or what no record holds (`missing`, used
    when there is no text); `partial` names what is missing even with the text."""
    text = (text or "").strip()
    return {
        "label": label,
        "text": text,
        "missing": partial or ("" if text else missing),
    }


def _recorded(system: AISystem | None, field: str) -> str:
    return (getattr(system, field, "") or "").strip() if system else ""


def _software_versions() -> str:
    import platform
    from importlib import metadata

    found = [f"Python {platform.python_version()}"]
    for package in ("torch", "scikit-learn", "interpret", "numpy", "pandas"):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def _base_model(version: ModelVersion) -> ModelVersion:
    node = version
    while node.parent_id:
        node = node.parent
    return node


def _named_with_column(column: str) -> str:
    """An auditor's form: the reader's name, and the file's where it differs."""
    named = feature_label(column)
    return named if named == column else f"{named} ({column})"


def onnx_architecture(version: ModelVersion) -> str:
    """An external model as recorded at registration: what made it and what it
    reads (its graph is not the product's to describe further)."""
    architecture = version.architecture or {}
    opsets = ", ".join(
        f"{domain} {number}"
        for domain, number in sorted((architecture.get("opsets") or {}).items())
    )
    producer = architecture.get("producer") or "an unrecorded producer"
    return (
        f"External model in ONNX, made by {producer} "
        f"(operator sets {opsets or 'unrecorded'}), run by "
        f"onnxruntime on the CPU; it reads "
        f"{len(architecture.get('features') or [])} input column(s) and was trained "
        "outside the product, so its training is not recorded here"
    )


def _domain_name(domain: Any) -> str:
    """A domain as readers know it (its name; "dataset/domain" is for logs)."""
    return domain.name if domain is not None else "an unrecorded domain"


def _fmt(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _modification(run: FineTuneRun) -> str:
    """What one fine-tuning step changed: the plan, the layers, the reason."""
    plan = run.applied_plan or {}
    layers = run.produced_version.layers if run.produced_version else []
    changed = [layer["name"] for layer in layers if layer.get("changed")]
    identical = [
        layer["name"]
        for layer in layers
        if layer.get("changed") is False or layer.get("changed") == 0
    ]
    text = (
        f"{run.parent.name} was fine-tuned into {run.produced_version.name} on "
        f"{run.target_domain.name} (adapted from {run.source_domain.name}; "
        f"{run.get_mode_display() or 'mode not recorded'}): trained "
        f"{', '.join(plan.get('trainable', [])) or 'no layer'}; froze "
        f"{', '.join(plan.get('frozen', [])) or 'no layer'}."
    )
    if changed or identical:
        text += (
            f" Weights changed: {', '.join(changed) or 'none'}; identical to the "
            f"parent: {', '.join(identical) or 'none'}."
        )
    if run.justification:
        text += f" The plan differed from the recommendation: “{run.justification}”."
    else:
        text += " The plan is the one the product recommended."
    return text


HYPERPARAMETER_NAMES = {
    "batch_size": "batch size",
    "lr": "learning rate",
    "holdout_fraction": "share of rows held out for early stopping",
    "threads": "CPU threads",
    "device": "device",
    "epochs": "epochs",
    "seed": "random seed",
    "mode": "mode",
}


def monitoring_so_far(version: ModelVersion) -> str:
    """What post-market monitoring has recorded about the version until this
    dossier was rendered, counted from the MonitoringRun and MonitoringFinding
    rows (a dossier rendered before approval says no pass has run)."""
    from governance.models import MonitoringFinding
    from governance.selectors import monitoring_record

    record = monitoring_record(version)
    if not record["runs"]:
        return (
            f"no monitoring pass has run yet on {version.name} (a pass looks only "
            "at approved versions)"
        )
    kinds = dict(MonitoringFinding.Kind.choices)
    severities = dict(MonitoringFinding.Severity.choices)
    counted = "; ".join(
        f"{kinds.get(kind, kind)} {severities.get(severity, severity)}: {count}"
        for (kind, severity), count in record["by_kind"]
    )
    runs, findings = record["runs"], record["findings"]
    text = (
        f"{runs} monitoring run{'s' if runs != 1 else ''} of {version.name}, windows "
        f"ending {record['first_window_end']:%Y-%m-%d} to "
        f"{record['last_window_end']:%Y-%m-%d}, raised {findings} "
        f"finding{'s' if findings != 1 else ''}"
        + (f" ({counted}); {record['open']} open" if findings else "")
        + ". "
    )
    report = record["report"]
    if report is None:
        return text + "no monitoring report has been rendered yet."
    return text + (
        f"Latest monitoring report: {report.reference} ({report.period_start} to "
        f"{report.period_end}, {report.get_status_display()}), SHA-256 "
        f"{report.sha256}."
    )


def _annex_iv(
    version: ModelVersion,
    *,
    system: AISystem | None,
    runs: list[FineTuneRun],
    bias: dict[str, Any],
    explainer: Any,
    limitations: list[str],
    sections: set[str],
    metrics: list[dict[str, Any]],
) -> dict[str, Any]:
    """The nine points of Annex IV, each item from a record or marked missing."""

    def see(section: str, number: int) -> str:
        return f" (section {number})" if section in sections else ""

    def field(name: str, what: str, label: str) -> dict[str, str]:
        return _item(
            label,
            _recorded(system, name),
            f"the AI system record's “{what}” is blank"
            if system
            else "no AI system record: the dataset belongs to none",
        )

    dataset = version.dataset
    base = _base_model(version)
    spec = dataset.spec or {}
    target = spec.get("target", {})
    inputs = [
        _named_with_column(name)
        for name, info in (dataset.schema or {}).items()
        if isinstance(info, dict) and info.get("role") == "feature"
    ]
    protected = [
        _named_with_column(str(entry.get("column")))
        + (" (special-category data)" if entry.get("special_category") else "")
        + (", a model input" if entry.get("input") else ", for bias checks only")
        for entry in spec.get("protected", [])
        if isinstance(entry, dict)
    ]
    metric_text = "; ".join(
        f"{row['domain']}: accuracy {_fmt(row['accuracy'])}, ROC AUC "
        f"{_fmt(row['roc_auc'])}, log loss {_fmt(row['log_loss'])}, calibration "
        f"error {_fmt(row['ece'])} on {row['n']:,} held-out rows"
        for row in metrics
    )
    checks = bias["checks"]
    bias_text = "; ".join(
        f"{row['domain']}: {row['check'].get_verdict_display()} "
        f"({row['check'].rows:,} rows, bias check {row['check'].pk})"
        for row in checks
    )
    policy = bias.get("policy") or {}
    training = version.training or {}
    hyper = (
        ", ".join(
            f"{HYPERPARAMETER_NAMES.get(key, key.replace('_', ' '))} {value}"
            for key, value in sorted((training.get("hyperparameters") or {}).items())
            if isinstance(value, int | float | str)
        )
        or "not recorded"
    )
    split = training.get("split") or {}
    system_name = f"{system.title} ({system.name})" if system else ""
    provider = ""
    if system and system.provider_name.strip():
        provider = system.provider_name.strip()
        if system.provider_contact.strip():
            provider += f", {system.provider_contact.strip()}"
    classification = ""
    if system and system.high_risk:
        classification = (
            f"High-risk under Annex III point {system.annex_iii_point.strip()}: "
            "Article 11 requires technical documentation along Annex IV."
        )
    elif system and system.not_high_risk_reason.strip():
        classification = (
            "Not high-risk, as the system record states: "
            f"{system.not_high_risk_reason.strip()}"
        )
    parent_text = (
        f"from {version.parent.name}" if version.parent else "no parent version"
    )
    if base.pk == version.pk:
        pretrained = (
            f"None: {version.name} is a base model trained here from randomly "
            f"initialised weights on {_domain_name(version.trained_on)}; "
            "it was not built on another pre-trained system."
        )
    else:
        pretrained = (
            f"Pre-trained base model: {base.name} ({base.get_kind_display()}, trained "
            f"on {_domain_name(base.trained_on)}, artifact SHA-256 "
            f"{base.artifact_sha256[:16]}…). "
            + " ".join(_modification(run) for run in runs)
        )
    points: list[dict[str, Any]] = [
        {
            "number": "1",
            "title": "General description of the AI system",
            "items": [
                field("intended_purpose", "intended purpose", "(a) Intended purpose"),
                _item("(a) AI system", system_name, "no AI system record"),
                _item(
                    "(a) Provider",
                    provider,
                    "the AI system record names no provider"
                    if system
                    else "no AI system record",
                ),
                field("affected_persons", "affected persons", "(a) Persons affected"),
                field("decision", "decision", "(a) What is decided"),
                _item(
                    "(a) Version",
                    f"{version.name} ({version.get_kind_display()}, {parent_text}), "
                    f"registered {version.created_at:%d %B %Y}, artifact SHA-256 "
                    f"{version.artifact_sha256 or 'not recorded'}" + see("lineage", 2),
                ),
                _item(
                    "(b) Interaction with other hardware, software and AI systems",
                    "",
                    "the systems it exchanges data with are not recorded; here it "
                    "scores decisions through this registry (admin and REST API)",
                ),
                _item(
                    "(c) Software versions",
                    f"at the rendering of this dossier: {_software_versions()}",
                ),
                _item(
                    "(d) Forms in which it is placed on the market or put into service",
                    "",
                    "no record of how the system is placed on the market",
                ),
                _item(
                    "(e) Hardware",
                    f"trained on {training.get('device')}"
                    if training.get("device")
                    else "",
                    "the hardware it was trained and runs on",
                    partial="the hardware it runs on in service"
                    if training.get("device")
                    else "",
                ),
                _item(
                    "(f) Photographs or illustrations of products it is part of",
                    "",
                    "no product record",
                ),
                _item(
                    "(g) User interface for the deployer",
                    "",
                    "no description of the deployer's interface is recorded",
                ),
                _item(
                    "(h) Instructions for use",
                    "",
                    "no instructions for use are recorded",
                ),
            ],
        },
        {
            "number": "2",
            "title": "Detailed description of the elements and of the development "
            "process",
            "items": [
                _item(
                    "(a) Pre-trained systems used and how they were modified",
                    pretrained + see("lineage", 2),
                ),
                _item(
                    "(b) Design specifications",
                    f"Predicts whether "
                    f"{feature_label(target.get('column', 'the target'))} is "
                    f"{', '.join(target.get('positive', [])) or 'the positive label'} "
                    "from the inputs in 2(d); a score at or above 0.5 is the positive "
                    f"outcome. Hyper-parameters: {hyper}.",
                    partial="the design choices' rationale and the trade-offs made "
                    "against the requirements of Chapter III, Section 2",
                ),
                _item(
                    "(c) System architecture",
                    (
                        f"Glass-box Explainable Boosting Machine, "
                        f"{(version.architecture or {}).get('terms', '?')} terms"
                        if version.kind == ModelVersion.Kind.GLASSBOX
                        else onnx_architecture(version)
                        if version.kind == ModelVersion.Kind.ONNX
                        else f"Tabular neural network, "
                        f"{sum(layer.get('parameters', 0) for layer in version.layers)}"
                        f" parameters in {len(version.layers)} named layers: "
                        + ", ".join(layer["name"] for layer in version.layers)
                    )
                    + (
                        f"; {training['train_seconds']:.1f} s of training on "
                        f"{training.get('device') or 'an unrecorded device'}"
                        if isinstance(training.get("train_seconds"), int | float)
                        and training["train_seconds"] >= 0.05
                        else ""
                    )
                    + see("identity", 1),
                ),
                _item(
                    "(d) Data requirements and datasheets",
                    f"{dataset.title}: {dataset.row_count:,} rows, content SHA-256 "
                    f"{dataset.content_sha256[:16]}…; inputs "
                    f"{', '.join(inputs) or 'not recorded'}; protected attributes "
                    f"{'; '.join(protected) or 'none declared'}; trained on "
                    f"{_domain_name(version.trained_on)}"
                    + (
                        f" ({split.get('train_rows')} training rows, "
                        f"{split.get('test_rows')} held out)"
                        if split
                        else ""
                    )
                    + (
                        f". Source: {_recorded(system, 'data_sources')}"
                        if _recorded(system, "data_sources")
                        else ""
                    )
                    + see("data", 3)
                    + ".",
                    partial="labelling and cleaning procedures"
                    + (
                        ""
                        if _recorded(system, "data_sources")
                        else "; the data's source"
                    ),
                ),
                _item(
                    "(e) Human oversight measures (Article 14)",
                    _recorded(system, "human_oversight"),
                    "the AI system record's “human oversight” is blank"
                    if system
                    else "no AI system record",
                ),
                _item(
                    "(f) Pre-determined changes",
                    "None: every change makes a new model version, which is reviewed "
                    "and approved anew before it may decide.",
                ),
                _item(
                    "(g) Validation and testing",
                    (
                        f"Held-out rows of each domain (split seed "
                        f"{split.get('seed', 'not recorded')}). {metric_text}."
                        if metric_text
                        else ""
                    )
                    + (f" Bias checks: {bias_text}." if bias_text else "")
                    + (
                        f" Explainer fidelity {explainer.agreement:.1%} agreement."
                        if explainer is not None
                        else ""
                    )
                    + " The logs, dated and attributed, are in the audit trail"
                    + see("approvals", 8)
                    + ".",
                ),
                _item(
                    "(h) Cybersecurity measures",
                    "Artifacts and data files are kept with their SHA-256; every "
                    "change is recorded in a hash-chained audit trail.",
                    partial="the system's other cybersecurity measures",
                ),
            ],
        },
        {
            "number": "3",
            "title": "Monitoring, functioning and control",
            "items": [
                _item(
                    "Capabilities and limitations in performance",
                    (metric_text + ". " if metric_text else "")
                    + (
                        f"{len(limitations)} limitations the numbers reveal are "
                        "listed in section 7."
                        if "limitations" in sections
                        else " ".join(limitations)
                    ),
                    "no performance was measured",
                ),
                _item(
                    "Accuracy for persons or groups",
                    f"Bias checks per protected group: {bias_text}" + see("bias", 5)
                    if bias_text
                    else "",
                    "no bias check of this version is recorded",
                ),
                field("human_oversight", "human oversight", "Human oversight measures"),
                _item(
                    "Input data specifications",
                    f"Inputs: {', '.join(inputs)}" if inputs else "",
                    "the dataset records no input columns",
                ),
            ],
        },
        {
            "number": "4",
            "title": "Appropriateness of the performance metrics",
            "items": [
                _item(
                    "Metrics measured",
                    "Accuracy, ROC AUC, log loss and expected calibration error on "
                    "held-out rows of each domain; group fairness with the "
                    "four-fifths line "
                    f"{policy.get('four_fifths_min_ratio', 'not recorded')}, "
                    "demographic parity and equal opportunity differences.",
                ),
                _item(
                    f"Why they suit {system.title if system else 'this system'}",
                    "",
                    "no record argues why these metrics fit the intended purpose",
                ),
            ],
        },
        {
            "number": "5",
            "title": "Risk management system (Article 9)",
            "items": [
                field("risk_summary", "risk management summary", "Risk management")
            ],
        },
        {
            "number": "6",
            "title": "Relevant changes through the lifecycle",
            "items": [
                _item(
                    "Changes",
                    f"Lineage: {' → '.join(_lineage_names(version))}"
                    f"; fine-tuning steps: {len(runs)}. Every review step, check "
                    "and dossier is an audit event" + see("approvals", 8) + ".",
                )
            ],
        },
        {
            "number": "7",
            "title": "Harmonised standards applied, or other solutions",
            "items": [
                _item(
                    "Standards",
                    "; ".join(system.standards_list) if system else "",
                    "the AI system record lists no standard or specification"
                    if system
                    else "no AI system record",
                )
            ],
        },
        {
            "number": "8",
            "title": "Copy of the EU declaration of conformity (Article 47)",
            "items": [
                _item(
                    "Declaration",
                    "",
                    "no EU declaration of conformity is held in this system; this "
                    "dossier is not one",
                )
            ],
        },
        {
            "number": "9",
            "title": "Post-market monitoring plan (Article 72)",
            "items": [
                field(
                    "monitoring_plan", "post-market monitoring plan", "Monitoring plan"
                ),
                _item("Monitoring so far", monitoring_so_far(version)),
            ],
        },
    ]
    for point in points:
        point["complete"] = not any(item["missing"] for item in point["items"])
    return {
        "points": points,
        "incomplete": [point["number"] for point in points if not point["complete"]],
        "high_risk": bool(system and system.high_risk),
        "classification": classification,
        "system": system,
    }
