"""How a refusal reads, wherever it is shown (admin message, API 400, command
error, a job's recorded error)."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def error_text(exc: Exception) -> str:
    """A Django ValidationError's messages joined, else the exception's text."""
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
