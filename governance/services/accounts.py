"""Accounts for the product's roles."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from governance import roles
from governance.services.audit import audit_record


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    role: str


DEMO_ACCOUNTS = (
    ("officer", roles.COMPLIANCE_OFFICER),
    ("officer2", roles.COMPLIANCE_OFFICER),  # four eyes need a second officer
    ("auditor", roles.AUDITOR),
    ("scientist", roles.DATA_SCIENTIST),
)


@transaction.atomic
def account_create_or_reset(
    *, username: str, role: str, password: str | None = None, actor: object = None
) -> Login:
    """Create a staff account in one role (or reset its password and role)."""
    if role not in roles.ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(roles.ROLES)}")
    password = password or secrets.token_urlsafe(12)
    user, created = get_user_model().objects.get_or_create(username=username)
    user.is_staff = True
    user.is_superuser = False
    user.set_password(password)
    user.save()
    user.groups.set([Group.objects.get(name=role)])
    audit_record(
        actor=actor,
        action="account.created" if created else "account.reset",
        obj=user,
        after={"username": username, "role": role},
    )
    return Login(username=username, password=password, role=role)


def demo_accounts_create(*, password: str | None = None) -> list[Login]:
    return [
        account_create_or_reset(username=username, role=role, password=password)
        for username, role in DEMO_ACCOUNTS
    ]
