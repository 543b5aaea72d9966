from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance import roles
from governance.services.accounts import account_create_or_reset


class Command(BaseCommand):
    help = (
        "Create an account in one role (or reset it) and print its login: a "
        "password for people (staff), an API token for the Decision service "
        "(token only: no password, no admin pages)."
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
        if login.token:
            self.stdout.write(
                f"{login.username} ({login.role}) API token: {login.token}\n"
                "Send it as `Authorization: Token <key>`; the account has no "
                "password and cannot open the admin."
            )
        else:
            self.stdout.write(
                f"{login.username} ({login.role}) password: {login.password}"
            )
