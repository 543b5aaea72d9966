"""Serious incidents (AI Act Art. 73): the reporting deadline of each, and which
are open or overdue, by one rule (REPORT_DAYS) for the page, the queue and the
list filter."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from governance.models.incidents import REPORT_DAYS, IncidentStatus, SeriousIncident


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


@dataclass(frozen=True)
class IncidentDeadline:
    days: int
    article: str
    aware_on: dt.date
    last_day: dt.date
    # The first moment past the deadline: the start of the day after the last.
    ends_at: dt.datetime
    overdue_days: int

    @property
    def overdue(self) -> bool:
        return self.overdue_days > 0

    def sentence(self) -> str:
        """The deadline in words, citing its paragraph of Art. 73."""
        text = (
            f"Not yet reported to the market surveillance authority. AI Act "
            f"{self.article}: report it immediately once a causal link with the AI "
            "system is established or reasonably likely, and not later than "
            f"{self.days} days after the provider became aware of it (aware on "
            f"{self.aware_on:%Y-%m-%d}): by the end of {self.last_day:%Y-%m-%d}."
        )
        if self.overdue:
            days = "day" if self.overdue_days == 1 else "days"
            text += f" Overdue by {self.overdue_days} {days}."
        return text


def incident_deadline(
    incident: SeriousIncident, *, now: dt.datetime | None = None
) -> IncidentDeadline | None:
    """The Art. 73 deadline of an incident not yet reported; None once it is
    reported, and for a correction of a reported one (a follow-up report,
    Art. 73(5), has no deadline of its own)."""
    if incident.status != IncidentStatus.OPEN or incident.corrects_id is not None:
        return None
    days, article = REPORT_DAYS[incident.category]
    aware_on = timezone.localdate(incident.aware_at)
    last_day = aware_on + dt.timedelta(days=days)
    today = timezone.localdate(now or timezone.now())
    return IncidentDeadline(
        days=days,
        article=article,
        aware_on=aware_on,
        last_day=last_day,
        ends_at=_day_start(last_day + dt.timedelta(days=1)),
        overdue_days=max(0, (today - last_day).days),
    )


def incident_open_q() -> Q:
    return Q(status=IncidentStatus.OPEN)


def incident_overdue_q(*, now: dt.datetime | None = None) -> Q:
    """Open incidents (not corrections) past their Art. 73 deadline: aware
    before the start of the day `days` before today, per category."""
    today = timezone.localdate(now or timezone.now())
    late = Q()
    for category, (days, _) in REPORT_DAYS.items():
        late |= Q(
            category=category,
            aware_at__lt=_day_start(today - dt.timedelta(days=days)),
        )
    return incident_open_q() & Q(corrects__isnull=True) & late
