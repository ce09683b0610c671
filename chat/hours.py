"""Business hours: whether a site's team is in now, and when it is back.

Pure functions over plain values (no ORM): a week of opening spans in the site's time
zone and a set of holidays. No spans at all means open every day, all day (holidays
still close). A span's closing time of 00:00 means midnight, the end of its day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ValidationError
from django.utils import dateformat
from django.utils.translation import gettext

MIDNIGHT = time(0, 0)
HORIZON_DAYS = 400  # how far ahead the next opening is looked for (a year of holidays)


@dataclass(frozen=True, slots=True)
class Span:
    weekday: int  # 0 Monday .. 6 Sunday
    opens: time
    closes: time  # MIDNIGHT: the end of the day

    def contains(self, moment: time) -> bool:
        return self.opens <= moment and (self.closes == MIDNIGHT or moment < self.closes)


ALWAYS = tuple(Span(day, MIDNIGHT, MIDNIGHT) for day in range(7))


def validate_time_zone(value: str) -> None:
    """A time zone name the system knows (IANA), e.g. Europe/Berlin."""
    if value not in available_timezones():
        raise ValidationError(
            f"{value!r} is not a time zone this server knows. Use a name like Europe/Berlin or UTC."
        )


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class Hours:
    time_zone: str
    spans: tuple[Span, ...]
    holidays: frozenset[date]

    @classmethod
    def of(cls, time_zone: str, spans: Iterable[Span], holidays: Iterable[date]) -> Hours:
        spans = tuple(sorted(spans, key=lambda s: (s.weekday, s.opens)))
        return cls(time_zone, spans or ALWAYS, frozenset(holidays))

    def _spans_on(self, day: date) -> list[Span]:
        if day in self.holidays:
            return []
        return [s for s in self.spans if s.weekday == day.weekday()]

    def open_at(self, moment: datetime) -> bool:
        """Whether the team is in at `moment` (an aware datetime)."""
        local = moment.astimezone(zone(self.time_zone))
        wall = local.time().replace(tzinfo=None)
        return any(span.contains(wall) for span in self._spans_on(local.date()))

    def next_opening(self, moment: datetime) -> datetime | None:
        """The first opening after `moment`, in the site's time zone; None if the team is
        never in within HORIZON_DAYS."""
        tz = zone(self.time_zone)
        local = moment.astimezone(tz)
        for offset in range(HORIZON_DAYS):
            day = local.date() + timedelta(days=offset)
            for span in self._spans_on(day):
                start = datetime.combine(day, span.opens, tzinfo=tz)
                if start > local:
                    return start
        return None


def back_words(opening: datetime | None, now: datetime) -> str:
    """'Our team is back today at 09:00 (Europe/Berlin).' and the like."""
    if opening is None:
        return gettext("Our team is away for now.")
    local_now = now.astimezone(opening.tzinfo)
    days = (opening.date() - local_now.date()).days
    # In the active language (chat.people.status_payload activates the conversation's).
    words = {"time": f"{opening:%H:%M}", "zone": str(opening.tzinfo)}
    if days == 0:
        return gettext("Our team is back today at %(time)s (%(zone)s).") % words
    if days == 1:
        return gettext("Our team is back tomorrow at %(time)s (%(zone)s).") % words
    if days < 7:
        words["day"] = dateformat.format(opening, "l")
        return gettext("Our team is back on %(day)s at %(time)s (%(zone)s).") % words
    words["date"] = dateformat.format(opening, "l j F")
    return gettext("Our team is back on %(date)s at %(time)s (%(zone)s).") % words
