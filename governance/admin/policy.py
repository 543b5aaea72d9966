"""The Policy page: the thresholds the product applies."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


def policy_view(request: HttpRequest) -> HttpResponse:
    """The thresholds the product applies, as an officer reads them (read-only;
    they are set by environment variables, see .env.example)."""
    from governance.selectors import monitoring_policy
    from governance.services.bias import fairness_policy
    from governance.services.training import freeze_policy

    freeze = freeze_policy()
    context = {
        **admin.site.each_context(request),
        "title": "Policy",
        "freeze": freeze,
        "fairness": fairness_policy().to_dict(),
        "explainer_min_agreement": settings.EXPLAINER_MIN_AGREEMENT,
        "counterfactual_budget": settings.COUNTERFACTUAL_TIME_BUDGET_S,
        "counterfactuals_per_decision": settings.COUNTERFACTUALS_PER_DECISION,
        "request_link_days": settings.REQUEST_LINK_DAYS,
        "rate_limit": settings.REQUEST_RATE_LIMIT_PER_HOUR,
        "monitoring": monitoring_policy().to_dict(),
        "monitoring_window_days": settings.MONITORING_WINDOW_DAYS,
        "monitoring_max_decisions": settings.MONITORING_MAX_DECISIONS,
        "monitoring_schedule_s": settings.MONITORING_SCHEDULE_S,
    }
    return TemplateResponse(request, "admin/governance/policy.html", context)
