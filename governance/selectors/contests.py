"""Reads about contests: whether one was answered (or is still open) late."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from governance.models import Contest


def contest_late_days(contest: Contest, *, now: datetime | None = None) -> int:
    """Days past the due date, by calendar day where the controller is (as the
    person reads the dates): decided after it, or still open after it; else 0."""
    when = contest.decided_at or now or timezone.now()
    days = (timezone.localdate(when) - timezone.localdate(contest.due_at)).days
    return max(days, 0)


def contest_is_late(contest: Contest, *, now: datetime | None = None) -> bool:
    """Answered, or still open, after the day it was due."""
    return contest_late_days(contest, now=now) > 0
