"""The compliance officer's, auditor's and data scientist's pages.

Records are written by services only: the admin shows them read-only, and its
actions and forms call services and say what they did.

One module an area; importing them registers their ModelAdmins (Django's
autodiscover imports this package). Tables and lists that display methods show
are templates under templates/admin/governance/display/.
"""

from governance.admin import (  # noqa: F401  (imported to register)
    audit,
    checks,
    contests,
    datasets,
    decision_logs,
    decisions,
    incidents,
    jobs,
    monitoring,
    reports,
    requests,
    runs,
    systems,
    versions,
)
from governance.admin.policy import policy_view

__all__ = ["policy_view"]
