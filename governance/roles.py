"""The product's roles, as Django groups, and the permissions each one holds.

Migrations call `sync_roles` so that a fresh database has the groups; a later
migration that changes a role calls it again. The permission matrix in
docs/permissions.md is checked cell by cell by tests/test_roles.py.
"""

from __future__ import annotations

from typing import Any

COMPLIANCE_OFFICER = "Compliance officer"
AUDITOR = "Auditor"
DATA_SCIENTIST = "Data scientist"

# For systems, not people: the account whose API token logs decisions.
DECISION_SERVICE = "Decision service"

ROLES = (COMPLIANCE_OFFICER, AUDITOR, DATA_SCIENTIST, DECISION_SERVICE)

_VIEW_ALL = [
    "governance.view_aisystem",
    "governance.view_dataset",
    "governance.view_domain",
    "governance.view_modelversion",
    "governance.view_finetunerun",
    "governance.view_shiftreport",
    "governance.view_biascheck",
    "governance.view_explainer",
    "governance.view_decisionexplanation",
    "governance.view_recoursecheck",
    "governance.view_report",
    "governance.view_decision",
    "governance.view_auditevent",
    "governance.view_job",
    "governance.view_decisionlog",
    "governance.view_decisionlogaudit",
    "governance.view_decisionoutcome",
    "governance.view_monitoringrun",
    "governance.view_monitoringfinding",
    "governance.view_seriousincident",
]

# Nobody may add, change or delete audit events: they are written by services only.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    COMPLIANCE_OFFICER: [
        *_VIEW_ALL,
        "governance.change_modelversion",  # review: approve, reject, retire
        "governance.view_explanationrequest",
        "governance.change_explanationrequest",  # assign, extend, draft, review
        "governance.change_finetunerun",  # cancel a run
        "governance.add_report",  # generate a dossier or a monitoring report
        "governance.change_report",  # review: approve, reject, release
        "governance.download_report",
        "governance.add_aisystem",  # the legal record of a system
        "governance.change_aisystem",
        "governance.view_contest",
        "governance.change_contest",  # human review of a contested decision
        "governance.add_job",  # run a check, fit an explainer, explain a decision
        "governance.change_monitoringfinding",  # acknowledge a finding
        "governance.add_decisionlogaudit",  # audit an imported decision log
        # A bias check or a fine-tuning run on the recommended plan, from a finding.
        "governance.recheck_monitoringfinding",
        "governance.add_seriousincident",  # AI Act Art. 73
        "governance.change_seriousincident",  # until it is reported
    ],
    AUDITOR: [
        *_VIEW_ALL,
        "governance.view_explanationrequest",
        "governance.view_contest",
        "governance.download_report",
    ],
    DATA_SCIENTIST: [
        *_VIEW_ALL,
        "governance.add_dataset",
        "governance.add_modelversion",
        "governance.add_finetunerun",
        "governance.change_finetunerun",
        "governance.add_report",  # a dossier or monitoring report (no individual one)
        "governance.add_job",  # shift, bias checks, explainer fits (not decisions)
        "governance.add_decisionlogaudit",  # audit an imported decision log
    ],
    DECISION_SERVICE: [
        "governance.add_decision",  # POST /api/decisions/ with a token
        "governance.add_decisionoutcome",  # POST /api/decisions/<ref>/outcome/
    ],
}


def sync_roles(apps: Any) -> None:
    """Create the groups and set exactly the permissions listed above."""
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; the groups need them now.
    for app_config in apps.get_app_configs():
        original = getattr(app_config, "models_module", None)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = original

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = [tuple(name.split(".")) for name in names]
        # A migration sees the models of its own time: permissions of models added
        # later are granted by the later migration that calls this again.
        permissions = [
            permission
            for permission in Permission.objects.select_related("content_type")
            if (permission.content_type.app_label, permission.codename) in wanted
        ]
        group.permissions.set(permissions)
