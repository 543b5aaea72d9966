"""Accounts for the product's roles."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token

from governance import roles
from governance.services.audit import audit_record


@dataclass(frozen=True)
class Login:
    username: str
    password: str  # empty for a service account: it has none
    role: str
    token: str = ""  # the API token of a service account


DEMO_ACCOUNTS = (
    ("officer", roles.COMPLIANCE_OFFICER),
    ("officer2", roles.COMPLIANCE_OFFICER),  # four eyes need a second officer
    # A contest is reviewed by an officer who took no part in explaining it.
    ("officer3", roles.COMPLIANCE_OFFICER),
    ("auditor", roles.AUDITOR),
    ("scientist", roles.DATA_SCIENTIST),
)

# Roles for systems, not people: an API token and nothing else (no password, no
# admin pages), so a leaked token cannot be turned into an admin session.
SERVICE_ROLES = frozenset({roles.DECISION_SERVICE})


def _valid_username(username: str) -> str:
    field = get_user_model()._meta.get_field(get_user_model().USERNAME_FIELD)
    if not username or username != username.strip():
        raise ValueError(
            f"username: {username!r} is empty or starts or ends with a space"
        )
    try:
        field.run_validators(username)
    except ValidationError as exc:
        raise ValueError(f"username: {' '.join(exc.messages)}") from None
    return username


@transaction.atomic
def account_create_or_reset(
    *,
    username: str,
    role: str,
    password: str | None = None,
    actor: object = None,
    can_log_in: bool = True,
) -> Login:
    """Create an account in one role, or reset its password (a service account's
    token) and role. People get a staff login; a service role gets an API token
    only: not staff, no usable password. `can_log_in=False` makes a person's
    account that acts only through services (the flow's named reviewers): staff
    in its role, with no usable password."""
    if role not in roles.ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(roles.ROLES)}")
    username = _valid_username(username)
    service = role in SERVICE_ROLES
    if (service or not can_log_in) and password:
        raise ValueError(
            f"a {role} account made this way has no password"
            if not service
            else f"a {role} account has no password: it uses an API token"
        )
    user, created = get_user_model().objects.get_or_create(username=username)
    user.is_staff = not service
    user.is_superuser = False
    token = ""
    if service or not can_log_in:
        user.set_unusable_password()
    else:
        password = password or secrets.token_urlsafe(12)
        user.set_password(password)
    user.save()
    user.groups.set([Group.objects.get(name=role)])
    if service:
        # A reset rotates the token, as it would a person's password.
        Token.objects.filter(user=user).delete()
        token = Token.objects.create(user=user).key
    audit_record(
        actor=actor,
        action="account.created" if created else "account.reset",
        obj=user,
        after={"username": username, "role": role, "token_only": service},
    )
    service_accounts_secure(actor=actor)
    return Login(username=username, password=password or "", role=role, token=token)


def service_accounts_secure(*, actor: object = None) -> int:
    """Make every service account token-only: accounts made before this rule
    were staff with a password (and could open the admin's Policy page).
    Called wherever accounts are ensured; returns how many were fixed."""
    fixed = 0
    members = get_user_model().objects.filter(groups__name__in=SERVICE_ROLES)
    for user in members.distinct():
        if not (user.is_staff or user.is_superuser or user.has_usable_password()):
            continue
        user.is_staff = user.is_superuser = False
        user.set_unusable_password()
        user.save(update_fields=["is_staff", "is_superuser", "password"])
        audit_record(
            actor=actor,
            action="account.made_token_only",
            obj=user,
            after={"username": user.get_username()},
        )
        fixed += 1
    return fixed


def demo_accounts_create(*, password: str | None = None) -> list[Login]:
    with transaction.atomic():
        service_accounts_secure(actor="command:demo")
    return [
        account_create_or_reset(username=username, role=role, password=password)
        for username, role in DEMO_ACCOUNTS
    ]
