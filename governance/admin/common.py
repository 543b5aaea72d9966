"""Pieces every area of the admin uses: the read-only base, small formatters."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

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


def short_hash(value: str) -> str:
    return f"{value[:12]}…" if value else "—"


def error_text(exc: Exception) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def whole_number(text: str, name: str) -> int:
    """A posted number, or a ValidationError naming the field (not int()'s text)."""
    if not text.strip().isdigit() or len(text.strip()) > 6:
        raise ValidationError(f"{name}: give a whole number, not {text[:20]!r}")
    return int(text.strip())


def top_shifted_features(shift: ShiftReport, count: int = 8) -> list[dict[str, Any]]:
    features = shift.report.get("features") or []
    ranked = sorted(features, key=lambda f: f.get("js_distance") or 0.0, reverse=True)
    return ranked[:count]
