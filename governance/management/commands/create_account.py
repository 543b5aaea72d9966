from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance import roles
from governance.services.accounts import account_create_or_reset


class Command(BaseCommand):
    help = (
        "Create a staff account in one role (or reset its password), print the login."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=roles.ROLES)

    def handle(self, *args: Any, username: str, role: str, **options: Any) -> None:
        try:
            login = account_create_or_reset(
                username=username, role=role, actor="command:create_account"
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{login.username} ({login.role}) password: {login.password}")
