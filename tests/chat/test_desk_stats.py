"""The support desk's figures (chat.desk_stats) against hand-computed ones, on
conversations built with the people services at controlled times; the page, its JSON
series and its queries (a fixed number, whatever the number of conversations)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from chat import desk_stats, people, services
from chat.models import Conversation, ConversationEvent, Message

pytestmark = pytest.mark.django_db

MIN = 60.0


class Clock:
    """Runs service calls 'at' a time: the rows a call records (events, messages, a
    rating) are given that time afterwards. Times are minutes after `base`."""

    def __init__(self, base):
        self.base = base

    @contextmanager
    def at(self, minutes: float):
        when = self.base + timedelta(minutes=minutes)
        events = ConversationEvent.objects.aggregate(m=Max("id"))["m"] or 0
        messages = Message.objects.aggregate(m=Max("id"))["m"] or 0
        started = timezone.now()
        yield when
        ConversationEvent.objects.filter(id__gt=events).update(created_at=when)
        Message.objects.filter(id__gt=messages).update(created_at=when)
        Conversation.objects.filter(csat_at__gte=started).update(csat_at=when)


@pytest.fixture
def clock():
    return Clock(timezone.now() - timedelta(hours=6))  # inside the day window


@pytest.fixture
def site(db):
    return services.site_ensure_default()


def staff_user(username: str, first_name: str):
    return get_user_model().objects.create_user(
        username, password="x", is_staff=True, first_name=first_name
    )


@pytest.fixture
def sam():
    return staff_user("sam", "Sam")


@pytest.fixture
def kim():
    return staff_user("kim", "Kim")


def new(site) -> Conversation:
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    return conversation


def answer(conversation: Conversation, agent: str) -> Message:
    """A user's message and an agent's answer (as a turn stores them)."""
    Message.objects.create(conversation=conversation, role="user", text="Help", status="answered")
    return Message.objects.create(
        conversation=conversation, role="assistant", agent_slug=agent, agent_name=agent, text="Hi"
    )


@pytest.fixture
def desk(site, clock, sam, kim):
    """Six conversations (times in minutes):

    A: billing answers (0); the user asks (10); Sam replies (14, taking it over); Sam
       resolves (30); rated 5 (31).
    B: billing (0) then support (2) answer; support escalates (5); Kim takes over (6),
       replies (15), resolves (65); rated 2 (66).
    C: billing answers (0); Sam resolves it from the agents (20); rated 4 (21).
    D: support answers (0); Sam takes over directly (40) and replies (42).
    E: the user asks in words before any answer (50); nobody replied yet.
    F: billing answers (0), nothing else.
    """
    a, b, c, d, e, f = (new(site) for _ in range(6))
    with clock.at(0):
        answer(a, "billing")
        answer(b, "billing")
        answer(c, "billing")
        answer(d, "customer_support")
        answer(f, "billing")
    with clock.at(2):
        answer(b, "customer_support")
    with clock.at(5):
        people.request_human(conversation=b, source="agent", reason="needs a refund")
    with clock.at(6):
        people.staff_take_over(conversation=b, staff=kim)
    with clock.at(10):
        people.request_human(conversation=a, source="user")
    with clock.at(14):
        people.staff_reply(conversation=a, staff=sam, text="Sam here.")
    with clock.at(15):
        people.staff_reply(conversation=b, staff=kim, text="Kim here.")
    with clock.at(20):
        people.staff_resolve(conversation=c, staff=sam)
    with clock.at(21):
        people.csat_record(conversation=c, score=4, comment="")
    with clock.at(30):
        people.staff_resolve(conversation=a, staff=sam)
    with clock.at(31):
        people.csat_record(conversation=a, score=5, comment="great")
    with clock.at(40):
        people.staff_take_over(conversation=d, staff=sam)
    with clock.at(42):
        people.staff_reply(conversation=d, staff=sam, text="Sam again.")
    with clock.at(50):
        people.request_human(conversation=e, source="words")
    with clock.at(65):
        people.staff_resolve(conversation=b, staff=kim)
    with clock.at(66):
        people.csat_record(conversation=b, score=2, comment="slow")
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f}


def by_slug(fig):
    return {a.slug: a for a in fig.agents}


def by_name(fig):
    return {s.name: s for s in fig.staff}


# --- The figures ----------------------------------------------------------------------------


def test_csat_is_the_mean_count_and_distribution_of_the_ratings_given(desk):
    fig = desk_stats.figures(window="day")
    assert fig.csat.count == 3 and fig.csat.total == 11
    assert fig.csat.mean == pytest.approx(11 / 3)
    assert fig.csat.distribution == {1: 0, 2: 1, 3: 0, 4: 1, 5: 1}


def test_time_to_first_human_reply_runs_from_the_wait_or_the_takeover(desk):
    fig = desk_stats.figures(window="day")
    # A: 10 -> 14 (from the wait), B: 5 -> 15 (from the wait, not the takeover at 6),
    # D: 40 -> 42 (no wait: from the takeover). E has no reply: not a figure.
    assert fig.first_reply.count == 3
    assert fig.first_reply.p50_seconds == 4 * MIN
    assert fig.first_reply.p90_seconds == pytest.approx(4 * MIN + 0.8 * 6 * MIN)  # 528 s
    sam, kim = by_name(fig)["Sam"], by_name(fig)["Kim"]
    assert (sam.first_reply.count, sam.first_reply.p50_seconds) == (2, 3 * MIN)
    assert sam.first_reply.p90_seconds == pytest.approx(2 * MIN + 0.9 * 2 * MIN)
    assert (kim.first_reply.count, kim.first_reply.p50_seconds) == (1, 10 * MIN)
    assert fig.first_reply.p50_words == "4 min" and fig.first_reply.p90_words == "8 min 48 s"


def test_time_to_resolution_runs_from_the_first_escalation_to_resolved(desk):
    fig = desk_stats.figures(window="day")
    # A: 10 -> 30, B: 5 -> 65. C was resolved from the agents: no escalation, no figure.
    assert fig.resolution.count == 2
    assert fig.resolution.p50_seconds == 40 * MIN
    assert fig.resolution.p90_seconds == pytest.approx(20 * MIN + 0.9 * 40 * MIN)
    assert by_name(fig)["Sam"].resolution.p50_seconds == 20 * MIN
    assert by_name(fig)["Kim"].resolution.p50_seconds == 60 * MIN


def test_the_escalation_rate_and_escalations_by_source(desk):
    fig = desk_stats.figures(window="day")
    # Answered by an agent: A, B, C, D, F; of them escalated: A, B, D. E was escalated
    # before any answer: counted by source, not in the rate.
    assert (fig.answered, fig.escalated) == (5, 3)
    assert fig.escalation_rate == pytest.approx(0.6)
    assert fig.escalations == {
        "user": 1, "words": 1, "agent": 1, "errors": 0, "feedback": 0, "staff": 1,
    }  # fmt: skip
    assert fig.escalation_count == 4


def test_per_agent_the_escalation_goes_to_the_agent_that_answered_last(desk):
    agents = by_slug(desk_stats.figures(window="day"))
    billing, support = agents["billing"], agents["customer_support"]
    assert (billing.answered, billing.escalated) == (4, 1)  # A, B, C, F; escalated: A
    assert billing.escalation_rate == pytest.approx(0.25)
    assert (support.answered, support.escalated) == (2, 2)  # B (it answered last), D
    assert support.escalation_rate == 1.0
    # CSAT per agent: only C (no staff answered it, billing answered last).
    assert (billing.csat.count, billing.csat.mean) == (1, 4.0)
    assert support.csat.count == 0


def test_per_staff_csat_goes_to_the_owner_when_staff_answered(desk):
    staff = by_name(desk_stats.figures(window="day"))
    assert (staff["Sam"].csat.count, staff["Sam"].csat.mean) == (1, 5.0)  # A (not C)
    assert (staff["Kim"].csat.count, staff["Kim"].csat.mean) == (1, 2.0)
    assert set(staff) == {"Sam", "Kim"}


def test_a_hand_back_and_a_second_wait_measure_each_episode(site, clock, sam, kim):
    c = new(site)
    with clock.at(0):
        answer(c, "billing")
    with clock.at(1):
        people.request_human(conversation=c, source="user")
    with clock.at(3):
        people.staff_take_over(conversation=c, staff=kim)
    with clock.at(4):
        people.staff_hand_back(conversation=c, staff=kim, note="no reply needed")
    with clock.at(10):
        answer(c, "customer_support")
    with clock.at(11):
        people.request_human(conversation=c, source="feedback")
    with clock.at(19):
        people.staff_reply(conversation=c, staff=sam, text="Hello")
    with clock.at(20):
        people.staff_reply(conversation=c, staff=sam, text="Still there?")
    with clock.at(41):
        people.staff_resolve(conversation=c, staff=sam)
    fig = desk_stats.figures(window="day")
    # The first wait got no reply; the second got one 8 minutes later (one first reply).
    assert (fig.first_reply.count, fig.first_reply.p50_seconds) == (1, 8 * MIN)
    # Resolution from the first escalation (1) to resolved (41).
    assert (fig.resolution.count, fig.resolution.p50_seconds) == (1, 40 * MIN)
    assert fig.escalations["user"] == 1 and fig.escalations["feedback"] == 1
    agents = by_slug(fig)
    assert agents["billing"].escalated == 1 and agents["customer_support"].escalated == 1
    assert (fig.answered, fig.escalated) == (1, 1)


def test_a_reopened_conversation_measures_from_the_escalation_after_its_last_resolution(
    site, clock, sam
):
    c = new(site)
    with clock.at(0):
        people.request_human(conversation=c, source="user")
    with clock.at(5):
        people.staff_resolve(conversation=c, staff=sam)  # from waiting: nobody owned it
    with clock.at(60):
        people.request_human(conversation=c, source="user")  # resolved -> waiting
    with clock.at(62):
        people.staff_reply(conversation=c, staff=sam, text="Back")
    with clock.at(90):
        people.staff_resolve(conversation=c, staff=sam)
    fig = desk_stats.figures(window="day")
    assert sorted(s for m in fig.staff for s in [m.resolution.p50_seconds] if s is not None) == [
        17.5 * MIN
    ]  # Sam's two: 5 min (he resolved it unowned) and 30 min
    assert fig.resolution.count == 2 and by_name(fig)["Sam"].resolution.count == 2
    assert fig.first_reply.p50_seconds == 2 * MIN  # from the second wait


def test_the_window_keeps_only_what_was_recorded_in_it(site, sam):
    clock = Clock(timezone.now() - timedelta(days=2))
    c = new(site)
    with clock.at(0):
        answer(c, "billing")
    with clock.at(1):
        people.request_human(conversation=c, source="user")
    with clock.at(3):
        people.staff_reply(conversation=c, staff=sam, text="Hi")
    with clock.at(5):
        people.staff_resolve(conversation=c, staff=sam)
    with clock.at(6):
        people.csat_record(conversation=c, score=3, comment="")
    day = desk_stats.figures(window="day")
    assert not day.has_data and day.csat.mean is None and day.escalation_rate is None
    assert day.first_reply.p50_seconds is None and day.staff == [] and day.agents == []
    week = desk_stats.figures(window="week")
    assert week.has_data and week.csat.count == 1 and week.escalation_rate == 1.0
    assert week.first_reply.p50_seconds == 2 * MIN and week.resolution.p50_seconds == 4 * MIN


def test_nothing_recorded_is_no_data_not_zeros(db):
    fig = desk_stats.figures(window="hour")
    assert not fig.has_data
    assert fig.csat.mean is None and fig.escalation_rate is None
    assert fig.first_reply.p50_seconds is None and fig.resolution.p90_seconds is None
    data = desk_stats.series(window="hour")
    assert data["has_data"] is False and data["escalations"] == {}
    assert all(v is None for v in data["csat_mean"])


def test_durations_read_as_words():
    assert [desk_stats.seconds_words(s) for s in (None, 45, 60, 250, 3600, 7500, 90000)] == [
        "", "45 s", "1 min", "4 min 10 s", "1 h", "2 h 5 min", "1 d 1 h",
    ]  # fmt: skip


# --- The series -----------------------------------------------------------------------------


def test_the_series_buckets_escalations_by_source_and_ratings(desk, clock):
    data = desk_stats.series(window="day")
    assert data["window"] == "day" and data["bucket_seconds"] == 3600
    n = len(data["labels"])
    assert n in (24, 25) and all(len(v) == n for v in data["escalations"].values())
    assert set(data["escalations"]) == {"user", "words", "agent", "staff"}
    assert {k: sum(v) for k, v in data["escalations"].items()} == {
        "user": 1, "words": 1, "agent": 1, "staff": 1,
    }  # fmt: skip
    assert len(data["csat_mean"]) == n and sum(data["csat_count"]) == 3
    rated = [(m, c) for m, c in zip(data["csat_mean"], data["csat_count"], strict=True) if c]
    assert sum(m * c for m, c in rated) == pytest.approx(11, abs=0.02)  # means to 2 places
    assert data["csat_distribution"] == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}
    assert data["has_data"] is True


# --- The page -------------------------------------------------------------------------------


URL = "/admin/chat/conversation/desk/"


def test_the_page_is_for_staff_only(client, db, desk):
    assert reverse("admin:chat_desk") == URL
    assert client.get(URL).status_code == 302  # to the login
    get_user_model().objects.create_user("visitor", password="x")
    client.login(username="visitor", password="x")
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.get(reverse("admin:chat_desk_series")).status_code == 302


def test_staff_see_the_figures_and_the_charts(client, desk, sam):
    client.force_login(sam)
    response = client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="desk-summary"' in body and "3.67 of 5" in body
    assert "median 4 min, p90 8 min 48 s" in body
    assert "median 40 min, p90 56 min" in body
    assert "60 % <small>(3 of 5 conversations)" in body
    assert 'data-agent="billing"' in body and 'data-staff="' in body
    assert reverse("admin:chat_desk_series") in body and "superorch/desk.js" in body
    series = client.get(reverse("admin:chat_desk_series") + "?window=week").json()
    assert series["window"] == "week" and series["bucket_seconds"] == 6 * 3600
    assert set(series) == {
        "window", "bucket_seconds", "labels", "escalations", "csat_mean", "csat_count",
        "csat_distribution", "has_data",
    }  # fmt: skip
    bad = client.get(reverse("admin:chat_desk_series") + "?window=year").json()
    assert bad["window"] == "day"  # an unknown window is the default one


def test_an_empty_desk_says_no_data_yet(admin_client):
    response = admin_client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="desk-empty"' in body and "No data yet" in body
    assert "desk-summary" not in body and "superorch/desk.js" not in body


def test_the_page_is_linked_from_the_admin_index_and_the_dashboard(admin_client):
    assert URL in admin_client.get("/admin/").content.decode()
    assert URL in admin_client.get("/admin/orchestrator/agentrun/dashboard/").content.decode()


def _desk_queries(client) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as page:
        assert client.get(URL).status_code == 200
    with CaptureQueriesContext(connection) as series:
        assert client.get(reverse("admin:chat_desk_series")).status_code == 200
    return len(page), len(series)


def _busy(site, clock, staff, count: int, start: float) -> None:
    for i in range(count):
        c = new(site)
        with clock.at(start + i):
            answer(c, "billing")
            people.request_human(conversation=c, source="user")
        with clock.at(start + i + 0.5):
            people.staff_reply(conversation=c, staff=staff, text="Hi")
            people.staff_resolve(conversation=c, staff=staff)
            people.csat_record(conversation=c, score=1 + i % 5, comment="")


def test_the_queries_do_not_grow_with_the_conversations(client, site, clock, sam, kim):
    client.force_login(sam)
    _busy(site, clock, sam, 1, 0)
    _desk_queries(client)  # warms what is cached per process (the agents' registry)
    few = _desk_queries(client)
    _busy(site, clock, sam, 12, 10)
    _busy(site, clock, kim, 12, 30)
    many = _desk_queries(client)
    assert many == few
    assert few[0] <= 20 and few[1] <= 8


def test_a_colleagues_first_reply_counts_for_its_author_not_the_owner(site, clock, sam, kim):
    c = new(site)
    with clock.at(0):
        people.request_human(conversation=c, reason="", source="user")
    with clock.at(1):
        people.staff_take_over(conversation=c, staff=sam)
    with clock.at(3):
        people.staff_reply(conversation=c, staff=kim, text="Kim here, I can help.")
    staff = by_name(desk_stats.figures(window="day"))
    assert Message.objects.get(role="staff").author == kim
    assert (staff["Kim"].first_reply.count, staff["Kim"].first_reply.p50_seconds) == (1, 3 * MIN)
    assert "Sam" not in staff or staff["Sam"].first_reply.count == 0
