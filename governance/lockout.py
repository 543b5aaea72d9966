"""Admin login lockout (django-axes, configured in settings): the audit event and
the page a locked-out login gets.

The receiver is connected when this module is imported (GovernanceConfig.ready).
"""

from __future__ import annotations

import math
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from governance.services.audit import audit_record


@receiver(user_locked_out, dispatch_uid="governance.lockout.audit")
def audit_lockout(
    sender: Any, request: HttpRequest, username: str | None, ip_address: str, **_: Any
) -> None:
    # Axes also signals each refused try during a lockout; only the failure that
    # started it was counted (axes_failures_since_start set), so one event a lockout.
    failures = getattr(request, "axes_failures_since_start", None)
    if failures is None:
        return
    name = (username or "")[:150]
    user = get_user_model().objects.filter(username=name).only("pk").first()
    audit_record(
        actor=f"login from {ip_address}",
        action="account.locked_out",
        object_type="auth.user",
        object_id=str(user.pk) if user else "",
        object_repr=name,
        after={
            "ip_address": ip_address,
            "failures": failures,
            "lockout_minutes": round(settings.AXES_COOLOFF_TIME * 60),
        },
    )


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """429 with Retry-After, in the product's words (axes' default is plain text)."""
    minutes = settings.AXES_COOLOFF_TIME * 60
    response = render(
        request,
        "public/login_locked.html",
        {"minutes": math.ceil(minutes)},
        status=429,
    )
    response["Retry-After"] = str(math.ceil(minutes * 60))
    return response
