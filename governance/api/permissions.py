"""Permission classes built from the product's model permissions (governance.roles)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission


def require_perm(*perms: str) -> type[BasePermission]:
    """A permission class that admits authenticated users holding every one of
    `perms`.

    Anonymous callers get 401 (DRF asks them to authenticate); authenticated
    callers without the permission get 403.
    """
    named = ", ".join(perms)
    plural = "s" if len(perms) > 1 else ""

    class HasPerm(BasePermission):
        message = f"Your account lacks the permission{plural} {named}."

        def has_permission(self, request: Any, view: Any) -> bool:
            user = request.user
            return bool(
                user
                and user.is_authenticated
                and all(user.has_perm(perm) for perm in perms)
            )

    return HasPerm


CanLogDecisions = require_perm("governance.add_decision")
CanRecordOutcomes = require_perm("governance.add_decisionoutcome")
CanViewModels = require_perm("governance.view_modelversion")
CanDownloadReports = require_perm("governance.download_report")
CanViewSystems = require_perm("governance.view_aisystem")
CanAddSystems = require_perm("governance.add_aisystem")
CanChangeSystems = require_perm("governance.change_aisystem")
CanStartJobs = require_perm("governance.add_job")
CanAddDatasets = require_perm("governance.add_dataset")
CanViewDatasets = require_perm("governance.view_dataset")
CanAddModels = require_perm("governance.add_modelversion")
CanViewJobs = require_perm("governance.view_job")
# A version's checks list shows each kind of record a job makes, and the jobs.
CanViewChecks = require_perm(
    "governance.view_modelversion",
    "governance.view_biascheck",
    "governance.view_shiftreport",
    "governance.view_explainer",
    "governance.view_job",
)
