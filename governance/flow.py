"""The whole flow for one dataset spec, step by step (DESIGN.md, "How work flows").

`run_flow` is what `manage.py run_flow SPEC.toml` and the demo call. Each step calls
services; the summary it returns holds only ids, figures and paths that were made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from governance.progress import StepCounter
from governance.services.audit import audit_verify
from governance.services.datasets import dataset_import_file

STEPS = ("import dataset", "verify audit trail")


def run_flow(
    *, spec_path: Path, actor: Any = None, progress: StepCounter | None = None
) -> dict[str, Any]:
    progress = progress or StepCounter(len(STEPS))
    summary: dict[str, Any] = {"spec": str(spec_path)}

    with progress.step("Importing dataset"):
        dataset = dataset_import_file(spec_path=spec_path, actor=actor)
    summary["dataset"] = {
        "id": dataset.pk,
        "name": dataset.name,
        "rows": dataset.row_count,
        "sha256": dataset.content_sha256,
        "domains": {
            domain.name: {
                "id": domain.pk,
                "availability": domain.availability,
                "rows": domain.row_count,
                "positive_rate": domain.positive_rate,
            }
            for domain in dataset.domains.all()
        },
    }

    with progress.step("Verifying the audit trail"):
        summary["audit"] = audit_verify().to_dict()
    return summary
