"""Business hours: in hours, out of hours, holidays, time zones, midnight, clock changes,
the next opening, and what the user is told (from the site's rows to the status)."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from chat.hours import MIDNIGHT, Hours, Span, back_words, validate_time_zone

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS_9_TO_17 = [Span(day, time(9), time(17)) for day in range(5)]


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def hours(spans=WEEKDAYS_9_TO_17, holidays=(), tz="Europe/Berlin") -> Hours:
    return Hours.of(tz, spans, holidays)


def test_open_inside_the_hours_and_closed_outside():
    week = hours()
    assert week.open_at(berlin(2026, 12, 2, 9, 0))  # a Wednesday, at opening
    assert week.open_at(berlin(2026, 12, 2, 16, 59))
    assert not week.open_at(berlin(2026, 12, 2, 17, 0))  # closing time is closed
    assert not week.open_at(berlin(2026, 12, 2, 8, 59))
    assert not week.open_at(berlin(2026, 12, 5, 12, 0))  # Saturday


def test_the_site_time_zone_decides_not_the_moment_s():
    week = hours()
    # 07:30 UTC is 08:30 in Berlin (winter): closed; 08:30 UTC is 09:30 there: open.
    assert not week.open_at(datetime(2026, 12, 2, 7, 30, tzinfo=UTC))
    assert week.open_at(datetime(2026, 12, 2, 8, 30, tzinfo=UTC))
    # The same hours in New York: 14:30 UTC is 09:30 there.
    new_york = hours(tz="America/New_York")
    assert new_york.open_at(datetime(2026, 12, 2, 14, 30, tzinfo=UTC))
    assert not new_york.open_at(datetime(2026, 12, 2, 13, 30, tzinfo=UTC))


def test_a_holiday_is_closed_all_day_and_skipped_by_the_next_opening():
    week = hours(holidays=[date(2026, 12, 24), date(2026, 12, 25)])
    assert not week.open_at(berlin(2026, 12, 24, 12, 0))  # a Thursday
    opening = week.next_opening(berlin(2026, 12, 23, 18, 0))
    assert opening == berlin(2026, 12, 28, 9, 0)  # Monday: Friday the 25th is a holiday too
    assert opening.tzinfo == BERLIN


def test_the_next_opening_later_today_tomorrow_and_after_the_weekend():
    week = hours()
    assert week.next_opening(berlin(2026, 12, 2, 7, 0)) == berlin(2026, 12, 2, 9, 0)
    assert week.next_opening(berlin(2026, 12, 2, 17, 0)) == berlin(2026, 12, 3, 9, 0)
    assert week.next_opening(berlin(2026, 12, 4, 17, 30)) == berlin(2026, 12, 7, 9, 0)


def test_a_lunch_break_is_two_spans():
    week = hours([Span(0, time(9), time(12)), Span(0, time(13), time(17))])
    monday = (2026, 11, 30)
    assert not week.open_at(berlin(*monday, 12, 30))
    assert week.next_opening(berlin(*monday, 12, 30)) == berlin(*monday, 13, 0)


def test_midnight_closes_at_the_end_of_the_day():
    week = hours([Span(4, time(18), MIDNIGHT)])  # Friday evening
    assert week.open_at(berlin(2026, 12, 4, 23, 59))
    assert not week.open_at(berlin(2026, 12, 5, 0, 0))


def test_no_hours_means_always_open_except_holidays():
    always = Hours.of("UTC", [], [date(2026, 1, 1)])
    assert always.open_at(datetime(2026, 6, 7, 3, 0, tzinfo=UTC))
    assert not always.open_at(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    assert always.next_opening(datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) == datetime(
        2026, 1, 2, tzinfo=UTC
    )


def test_never_open_has_no_next_opening():
    closed = Hours.of("UTC", [Span(0, time(9), time(10))], [])
    # A holiday every Monday of the horizon: nothing to name.
    mondays = [date.fromordinal(date(2026, 1, 5).toordinal() + 7 * n) for n in range(60)]
    assert (
        Hours.of("UTC", closed.spans, mondays).next_opening(datetime(2026, 1, 1, tzinfo=UTC))
        is None
    )
    assert back_words(None, datetime(2026, 1, 1, tzinfo=UTC)) == "Our team is away for now."


def test_the_back_words_name_the_day_and_the_time_zone():
    now = berlin(2026, 12, 2, 18, 0)
    assert back_words(berlin(2026, 12, 3, 9, 0), now) == (
        "Our team is back tomorrow at 09:00 (Europe/Berlin)."
    )
    assert "today at 09:00" in back_words(berlin(2026, 12, 2, 9, 0), berlin(2026, 12, 2, 7, 0))
    assert "on Monday at 09:00" in back_words(berlin(2026, 12, 7, 9, 0), berlin(2026, 12, 4, 18))


def test_an_unknown_time_zone_is_a_plain_error():
    validate_time_zone("Europe/Berlin")
    with pytest.raises(ValidationError, match="not a time zone this server knows"):
        validate_time_zone("Mars/Olympus")


@pytest.mark.django_db
def test_a_closing_time_before_the_opening_is_a_plain_error():
    from chat.models import OpeningHours, Site

    site = Site.objects.create(name="Shop", key="shop")
    with pytest.raises(ValidationError) as refused:
        OpeningHours(site=site, weekday=0, opens=time(17), closes=time(9)).full_clean()
    assert "closing time must be after the opening time" in str(refused.value)
    OpeningHours(site=site, weekday=0, opens=time(17), closes=MIDNIGHT).full_clean()
    with pytest.raises(ValidationError):
        Site(name="x", key="x2", time_zone="Nowhere/Land").full_clean()


def test_a_night_split_at_midnight_across_two_days_is_open_throughout():
    """Friday 18:00-00:00 and Saturday 00:00-02:00: one evening shift past midnight."""
    week = hours([Span(4, time(18), MIDNIGHT), Span(5, MIDNIGHT, time(2))])
    assert week.open_at(berlin(2026, 12, 4, 23, 59, 59))
    assert week.open_at(berlin(2026, 12, 5, 0, 0))
    assert week.open_at(berlin(2026, 12, 5, 1, 59))
    assert not week.open_at(berlin(2026, 12, 5, 2, 0))
    # Closed at 02:00 on Saturday: back next Friday evening.
    assert week.next_opening(berlin(2026, 12, 5, 2, 0)) == berlin(2026, 12, 11, 18, 0)


def test_midnight_is_the_sites_midnight_not_utcs():
    week = hours([Span(4, time(18), MIDNIGHT)])  # Friday evening, Berlin
    # 22:30 UTC on Friday is 23:30 in Berlin: open; 23:30 UTC is Saturday 00:30 there: closed.
    assert week.open_at(datetime(2026, 12, 4, 22, 30, tzinfo=UTC))
    assert not week.open_at(datetime(2026, 12, 4, 23, 30, tzinfo=UTC))
    assert week.next_opening(datetime(2026, 12, 4, 23, 30, tzinfo=UTC)) == berlin(2026, 12, 11, 18)


def test_a_holiday_is_the_sites_day():
    """The holiday is a date in the site's time zone: it begins at the site's midnight."""
    week = hours(holidays=[date(2026, 12, 24)])
    # 23:30 UTC on the 23rd is already the 24th in Berlin, 00:30; 08:30 UTC there is 09:30.
    assert not week.open_at(datetime(2026, 12, 24, 8, 30, tzinfo=UTC))
    assert week.open_at(datetime(2026, 12, 23, 8, 30, tzinfo=UTC))
    assert week.next_opening(datetime(2026, 12, 23, 23, 30, tzinfo=UTC)) == berlin(2026, 12, 25, 9)


def test_the_next_opening_across_a_clock_change_keeps_the_wall_time():
    week = hours()
    # Berlin moves to summer time on Sunday 29 March 2026: Monday opens at 09:00 +02:00.
    opening = week.next_opening(berlin(2026, 3, 27, 18, 0))
    assert opening == berlin(2026, 3, 30, 9, 0)
    assert opening.isoformat() == "2026-03-30T09:00:00+02:00"
    assert back_words(opening, berlin(2026, 3, 27, 18, 0)) == (
        "Our team is back on Monday at 09:00 (Europe/Berlin)."
    )


@pytest.mark.django_db
def test_a_sites_holidays_and_hours_reach_the_status_in_its_own_time_zone():
    """From the admin's rows to what the user is told: a holiday in New York closes the
    site, the words say when the team is back (there) and offer email; in hours they do not."""
    from chat import people, services
    from chat.models import Conversation, Holiday, OpeningHours

    site = services.site_ensure_default()
    site.time_zone = "America/New_York"
    site.save()
    for day in range(5):
        OpeningHours.objects.create(site=site, weekday=day, opens=time(9), closes=time(17))
    Holiday.objects.create(site=site, date=date(2026, 12, 24))
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    people.request_human(conversation=conversation, source="user")
    conversation = Conversation.objects.get(pk=conversation.pk)

    # 15:00 UTC on Thursday 24 December is 10:00 in New York: in hours, but a holiday.
    status = people.status_payload(
        conversation=conversation, now=datetime(2026, 12, 24, 15, 0, tzinfo=UTC)
    )
    assert (status.open_now, status.eta_seconds) == (False, None)
    assert status.opens_at == "2026-12-25T09:00:00-05:00"
    assert status.message == (
        "We have asked for a person. Our team is back tomorrow at 09:00 (America/New_York)."
        " Leave your email and we will answer you there."
    )
    # The next day at the same time: open, no email offered.
    status = people.status_payload(
        conversation=conversation, now=datetime(2026, 12, 25, 15, 0, tzinfo=UTC)
    )
    assert status.open_now and status.opens_at is None
    assert "Leave your email" not in status.message
    # 13:30 UTC is 08:30 there: closed until 09:00 today.
    status = people.status_payload(
        conversation=conversation, now=datetime(2026, 12, 25, 13, 30, tzinfo=UTC)
    )
    assert "back today at 09:00 (America/New_York)" in status.message
