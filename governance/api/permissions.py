"""Permission classes built from the product's model permissions (governance.roles)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission


def require_perm(perm: str) -> type[BasePermission]:
    """A permission class that admits authenticated users holding `perm`.

    Anonymous callers get 401 (DRF asks them to authenticate); authenticated
    callers without the permission get 403.
    """

    class HasPerm(BasePermission):
        message = f"Your account lacks the permission {perm}."

        def has_permission(self, request: Any, view: Any) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perm(perm))

    return HasPerm


CanLogDecisions = require_perm("governance.add_decision")
CanRecordOutcomes = require_perm("governance.add_decisionoutcome")
CanViewModels = require_perm("governance.view_modelversion")
CanDownloadReports = require_perm("governance.download_report")
CanViewSystems = require_perm("governance.view_aisystem")
CanAddSystems = require_perm("governance.add_aisystem")
CanChangeSystems = require_perm("governance.change_aisystem")
