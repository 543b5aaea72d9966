"""Pieces every area of the admin uses: the read-only base, workflow buttons,
small formatters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from governance.errors import error_text
from governance.models import ShiftReport

# The site's titles and front page: governance/admin_site.py.


class ReadOnlyAdmin(admin.ModelAdmin):
    """Results, lineage and audit rows are written once, by services."""

    # get_absolute_url points into the admin itself: no "view on site" button.
    view_on_site = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WorkflowButtons:
    """Workflow steps posted by the buttons on an object's page, at
    `<pk>/workflow/<step>/` (URL name `<app>_<model>_workflow`). A step that the
    service refuses is shown as an error message; nothing else is written."""

    workflow_permission: str

    def workflow_steps(
        self, request: HttpRequest, obj: Any
    ) -> dict[str, Callable[[], Any]]:
        raise NotImplementedError

    def workflow_done_message(self, obj: Any) -> str:
        return f"{obj.number}: {obj.get_status_display()}."

    def get_urls(self) -> list[Any]:
        opts = self.model._meta
        view = self.admin_site.admin_view(self.workflow_view)
        return [
            path(
                "<int:pk>/workflow/<str:step>/",
                view,
                name=f"{opts.app_label}_{opts.model_name}_workflow",
            ),
            *super().get_urls(),
        ]

    def workflow_view(self, request: HttpRequest, pk: int, step: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405)
        if not request.user.has_perm(self.workflow_permission):
            raise PermissionDenied
        obj = get_object_or_404(self.model, pk=pk)
        steps = self.workflow_steps(request, obj)
        if step not in steps:
            raise Http404("unknown workflow step")
        try:
            steps[step]()
        except (ValidationError, ValueError) as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
        else:
            obj.refresh_from_db()
            self.message_user(
                request, self.workflow_done_message(obj), messages.SUCCESS
            )
        opts = self.model._meta
        return HttpResponseRedirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
        )


def short_hash(value: str) -> str:
    return f"{value[:12]}…" if value else "—"


def whole_number(text: str, name: str) -> int:
    """A posted number, or a ValidationError naming the field (not int()'s text)."""
    if not text.strip().isdigit() or len(text.strip()) > 6:
        raise ValidationError(f"{name}: give a whole number, not {text[:20]!r}")
    return int(text.strip())


def top_shifted_features(shift: ShiftReport, count: int = 8) -> list[dict[str, Any]]:
    features = shift.report.get("features") or []
    ranked = sorted(features, key=lambda f: f.get("js_distance") or 0.0, reverse=True)
    return ranked[:count]
