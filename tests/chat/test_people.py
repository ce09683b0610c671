"""People in the loop, as services (chat.people): each transition, its record and its
broadcast, the races, csat, the contact email, presence and the expected wait."""

from __future__ import annotations

import json
import threading
from datetime import UTC, time, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from chat import people, protocol, selectors, services
from chat.models import (
    Conversation,
    ConversationEvent,
    Feedback,
    Message,
    OpeningHours,
    Site,
    StaffNote,
    StaffPresence,
    Turn,
)


def supervisor(user):
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name="Supervisor"))
    return user


pytestmark = pytest.mark.django_db


@pytest.fixture
def site(db):
    return services.site_ensure_default()


@pytest.fixture
def conversation(site):
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    return conversation


def staff_user(username: str, first_name: str = ""):
    return get_user_model().objects.create_user(
        username, password="x", is_staff=True, first_name=first_name
    )


@pytest.fixture
def sam():
    return staff_user("sam", "Sam")


@pytest.fixture
def kim():
    return staff_user("kim", "Kim")


@pytest.fixture
def sent(monkeypatch):
    """The status frames broadcast (at commit), as dicts."""
    frames: list[dict] = []

    def capture(conversation_uuid, frame, *, status=None):
        if isinstance(frame, protocol.StatusChanged):
            frames.append({**json.loads(frame.encode()), "_group_status": status})

    monkeypatch.setattr(people, "broadcast_on_commit", capture)
    return frames


def fresh(conversation: Conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


def events(conversation: Conversation) -> list[tuple[str, str, str]]:
    return list(
        ConversationEvent.objects.filter(conversation=conversation).values_list(
            "from_status", "to_status", "source"
        )
    )


# --- Transitions ----------------------------------------------------------------------------


def test_a_request_for_a_person_waits_is_recorded_and_broadcast(conversation, sent):
    moved = people.request_human(
        conversation=conversation, reason=" the bot is stuck ", source="user"
    )
    assert moved.changed and fresh(conversation).status == "waiting"
    event = ConversationEvent.objects.get(conversation=conversation)
    assert (event.from_status, event.to_status, event.source) == ("bot", "waiting", "user")
    assert event.reason == "the bot is stuck" and event.actor is None
    (frame,) = sent
    assert frame["type"] == "conversation.status" and frame["status"] == "waiting"
    assert frame["staff"] is None and frame["open_now"] is True
    assert frame["_group_status"] == "waiting"  # the sockets follow it
    assert "asked for a person" in frame["message"]


def test_asking_again_changes_nothing(conversation, sent, sam):
    people.request_human(conversation=conversation, source="user")
    again = people.request_human(conversation=conversation, source="agent")
    assert not again.changed and again.conversation.status == "waiting"
    people.staff_take_over(conversation=conversation, staff=sam)
    with_person = people.request_human(conversation=conversation, source="user")
    assert not with_person.changed and with_person.conversation.status == "human"
    assert len(events(conversation)) == 2 and len(sent) == 2


def test_take_over_reply_hand_back_resolve_and_reopen(conversation, sent, sam):
    people.request_human(conversation=conversation, source="user")
    taken = people.staff_take_over(conversation=conversation, staff=sam)
    assert (taken.status, taken.owner) == ("human", sam)
    assert sent[-1]["staff"] == {"name": "Sam"}
    assert sent[-1]["message"] == "Sam has joined the conversation."

    reply = people.staff_reply(conversation=conversation, staff=sam, text=" Hello, Sam here. ")
    assert (reply.role, reply.agent_name, reply.text) == ("staff", "Sam", "Hello, Sam here.")

    back = people.staff_hand_back(conversation=conversation, staff=sam, note="Refund approved")
    assert (back.status, back.owner, back.handback_note) == ("bot", None, "Refund approved")
    people.staff_resolve(conversation=conversation, staff=sam)
    assert fresh(conversation).status == "resolved"
    people.staff_resolve(conversation=conversation, staff=sam)  # again: nothing changes

    # The user writes again: the agents answer.
    services.message_receive(conversation=conversation, client_id="c-9", text="One more thing")
    assert fresh(conversation).status == "bot"
    assert events(conversation) == [
        ("bot", "waiting", "user"),
        ("waiting", "human", "staff"),
        ("human", "bot", "staff"),
        ("bot", "resolved", "staff"),
        ("resolved", "bot", "reopen"),
    ]
    assert [f["status"] for f in sent] == ["waiting", "human", "bot", "resolved", "bot"]
    handback = ConversationEvent.objects.get(
        conversation=conversation, to_status="bot", source="staff"
    )
    assert handback.actor == sam and handback.reason == "Refund approved"


def test_a_staff_reply_to_a_resolved_conversation_reopens_it_as_theirs(conversation, sent, sam):
    people.staff_resolve(conversation=conversation, staff=sam)
    people.staff_reply(conversation=conversation, staff=sam, text="One more detail")
    current = fresh(conversation)
    assert (current.status, current.owner) == ("human", sam)
    assert events(conversation)[-1] == ("resolved", "human", "staff")


def test_a_staff_reply_answers_the_waiting_messages(conversation, sam):
    services.message_receive(conversation=conversation, client_id="c-1", text="Hello?")
    people.staff_reply(conversation=conversation, staff=sam, text="Hi!")
    assert Message.objects.get(client_id="c-1").status == "answered"
    with pytest.raises(people.PeopleError, match="empty"):
        people.staff_reply(conversation=conversation, staff=sam, text="   ")


def test_hand_back_needs_a_person_or_a_wait(conversation, sam):
    with pytest.raises(
        people.PeopleError, match="The agents are answering this conversation; handing it back"
    ):
        people.staff_hand_back(conversation=conversation, staff=sam, note="")


def test_assign_to_a_colleague(conversation, sent, sam, kim):
    supervisor(sam)  # assigning is a Supervisor's (chat/roles.py)
    people.staff_take_over(conversation=conversation, staff=sam)
    assigned = people.staff_assign(conversation=conversation, staff=sam, to=kim)
    assert (assigned.status, assigned.owner) == ("human", kim)
    event = ConversationEvent.objects.filter(conversation=conversation).last()
    assert (event.kind, event.actor, event.owner) == ("assign", sam, kim)
    assert sent[-1]["staff"] == {"name": "Kim"}
    visitor = get_user_model().objects.create_user("visitor")
    with pytest.raises(people.PeopleError, match="not an active member of staff"):
        people.staff_assign(conversation=conversation, staff=sam, to=visitor)


def test_private_notes_are_stored_and_never_reach_the_user_or_a_model(conversation, sam, sent):
    note = people.staff_note_add(conversation=conversation, staff=sam, text="VIP, be nice")
    assert StaffNote.objects.get().author == sam and note.text == "VIP, be nice"
    assert sent == []  # nothing broadcast
    services.message_receive(conversation=conversation, client_id="c-1", text="Hi")
    turn = services.turn_start_next(conversation_id=conversation.pk)
    assert "VIP" not in json.dumps(selectors.turn_history(turn=turn))
    with pytest.raises(people.PeopleError, match="too long"):
        people.staff_note_add(conversation=conversation, staff=sam, text="x" * 4001)


# --- Races ------------------------------------------------------------------------------------


def test_of_two_takeovers_the_second_is_told_who_won(conversation, sam, kim):
    people.request_human(conversation=conversation, source="user")
    people.staff_take_over(conversation=conversation, staff=sam)
    with pytest.raises(people.PeopleError, match="Sam has already taken this conversation over"):
        people.staff_take_over(conversation=conversation, staff=kim)
    assert people.staff_take_over(conversation=conversation, staff=sam).owner == sam  # idempotent
    assert fresh(conversation).owner == sam


def test_a_takeover_that_read_before_the_winner_committed_updates_nothing(
    conversation, sam, kim, monkeypatch
):
    """SQLite does not lock on select_for_update: the conditional UPDATE is the guard."""
    people.request_human(conversation=conversation, source="user")
    stale = Conversation.objects.select_related("site", "owner").get(pk=conversation.pk)
    people.staff_take_over(conversation=conversation, staff=sam)
    monkeypatch.setattr(people, "_locked", lambda pk: stale)  # Kim read "waiting"
    with pytest.raises(people.PeopleError, match="Sam has already"):
        people.staff_take_over(conversation=conversation, staff=kim)
    assert fresh(conversation).owner == sam
    assert ConversationEvent.objects.filter(to_status="human").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_takeovers_on_two_threads_at_once_one_wins(site):
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    people.request_human(conversation=conversation, source="user")
    users = [staff_user("ana", "Ana"), staff_user("bo", "Bo")]
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def take(user):
        try:
            barrier.wait(timeout=5)
            people.staff_take_over(conversation=conversation, staff=user)
            results[user.username] = "won"
        except people.PeopleError as exc:
            results[user.username] = str(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(results.values(), key=lambda r: r != "won")[0] == "won"
    assert list(results.values()).count("won") == 1, results
    loser = next(r for r in results.values() if r != "won")
    winner = fresh(conversation).owner
    assert f"{winner.first_name} has already taken this conversation over" in loser
    assert ConversationEvent.objects.filter(to_status="human").count() == 1


# --- Agents stay quiet -------------------------------------------------------------------------


def test_no_turn_starts_while_a_person_is_asked_for_or_owns_it(conversation, sam):
    services.message_receive(conversation=conversation, client_id="c-1", text="Hi")
    people.request_human(conversation=conversation, source="user")
    assert not selectors.conversation_has_pending(conversation_id=conversation.pk)
    assert services.turn_start_next(conversation_id=conversation.pk) is None
    assert conversation.pk not in [pk for pk, _ in selectors.conversations_to_resume()]
    people.staff_take_over(conversation=conversation, staff=sam)
    assert services.turn_start_next(conversation_id=conversation.pk) is None
    people.staff_hand_back(conversation=conversation, staff=sam, note="")
    assert selectors.conversation_has_pending(conversation_id=conversation.pk)  # answered now
    assert conversation.pk in [pk for pk, _ in selectors.conversations_to_resume()]


def test_a_turn_cancelled_by_a_takeover_leaves_its_message_for_the_person(conversation, sam):
    services.message_receive(conversation=conversation, client_id="c-1", text="Hi")
    turn = services.turn_start_next(conversation_id=conversation.pk)
    people.staff_take_over(conversation=conversation, staff=sam)
    services.turn_finish(turn=turn, status="cancelled", agent_slug="", usage={})
    assert Message.objects.get(client_id="c-1").status == "pending"


# --- Automatic escalation --------------------------------------------------------------------


def _failed_turn(conversation, text):
    services.message_receive(conversation=conversation, client_id=text, text=text)
    turn = services.turn_start_next(conversation_id=conversation.pk)
    services.turn_finish(
        turn=turn, status="error", agent_slug="", usage={}, error_code="internal", error="x"
    )


def test_after_errors_in_a_row_a_person_is_asked_for(conversation, settings):
    settings.SUPERORCH_ESCALATE_AFTER_ERRORS = 2
    _failed_turn(conversation, "a")
    assert people.after_turn_error(conversation_id=conversation.pk) is None
    assert fresh(conversation).status == "bot"
    _failed_turn(conversation, "b")
    moved = people.after_turn_error(conversation_id=conversation.pk)
    assert moved.changed and fresh(conversation).status == "waiting"
    assert events(conversation) == [("bot", "waiting", "errors")]


def test_an_answer_between_errors_starts_the_count_again(conversation, settings):
    settings.SUPERORCH_ESCALATE_AFTER_ERRORS = 2
    _failed_turn(conversation, "a")
    services.message_receive(conversation=conversation, client_id="ok", text="ok")
    turn = services.turn_start_next(conversation_id=conversation.pk)
    services.turn_finish(turn=turn, status="ok", agent_slug="", usage={})
    _failed_turn(conversation, "b")
    assert people.after_turn_error(conversation_id=conversation.pk) is None
    settings.SUPERORCH_ESCALATE_AFTER_ERRORS = 0  # off
    _failed_turn(conversation, "c")
    assert people.after_turn_error(conversation_id=conversation.pk) is None
    assert Turn.objects.filter(status="error").count() == 3


def _reply(conversation, text="An answer"):
    return Message.objects.create(conversation=conversation, role="assistant", text=text)


def test_repeated_thumbs_down_ask_for_a_person(conversation, settings):
    settings.SUPERORCH_ESCALATE_AFTER_THUMBS_DOWN = 2
    first, second = _reply(conversation), _reply(conversation)
    services.feedback_record(
        conversation=conversation, message_uuid=str(first.uuid), value="down", comment=""
    )
    assert fresh(conversation).status == "bot"
    services.feedback_record(
        conversation=conversation, message_uuid=str(second.uuid), value="up", comment=""
    )
    assert fresh(conversation).status == "bot"
    services.feedback_record(
        conversation=conversation, message_uuid=str(second.uuid), value="down", comment=""
    )
    assert fresh(conversation).status == "waiting"
    assert events(conversation) == [("bot", "waiting", "feedback")]
    assert Feedback.objects.filter(value="down").count() == 2


# --- csat and the contact email --------------------------------------------------------------


def test_csat_only_once_resolved_and_only_once(conversation, sam, sent):
    with pytest.raises(people.PeopleError, match="once it is resolved"):
        people.csat_record(conversation=conversation, score=5, comment="")
    people.staff_resolve(conversation=conversation, staff=sam)
    rated = people.csat_record(conversation=conversation, score=4, comment=" Quick, thanks ")
    assert (rated.csat_score, rated.csat_comment) == (4, "Quick, thanks")
    assert sent[-1]["csat"] == 4 and sent[-1]["status"] == "resolved"
    with pytest.raises(people.PeopleError, match="already rated"):
        people.csat_record(conversation=conversation, score=1, comment="changed my mind")
    assert fresh(conversation).csat_score == 4


def test_the_contact_email_is_validated_and_stored(conversation, sent):
    with pytest.raises(people.PeopleError, match="does not look right"):
        people.contact_email_set(conversation=conversation, email="not-an-address")
    people.contact_email_set(conversation=conversation, email=" ada@example.com ")
    assert fresh(conversation).contact_email == "ada@example.com"
    assert sent[-1]["email_saved"] is True


# --- Business hours in the status, presence and the expected wait ------------------------------


def test_out_of_hours_the_status_says_when_the_team_is_back(conversation, site):
    site.time_zone = "Europe/Berlin"
    site.save()
    OpeningHours.objects.create(site=site, weekday=0, opens=time(9), closes=time(17))
    people.request_human(conversation=conversation, source="user")
    saturday = timezone.datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    status = people.status_payload(conversation=fresh(conversation), now=saturday)
    assert status.open_now is False and status.eta_seconds is None
    assert status.opens_at == "2026-12-07T09:00:00+01:00"
    assert "back on Monday at 09:00 (Europe/Berlin)" in status.message
    assert "Leave your email" in status.message
    monday = timezone.datetime(2026, 12, 7, 8, 30, tzinfo=UTC)  # 09:30 in Berlin
    assert people.status_payload(conversation=fresh(conversation), now=monday).open_now is True


def test_staff_count_as_online_for_a_while_after_they_were_seen(sam, kim, settings):
    settings.SUPERORCH_STAFF_ONLINE_SECONDS = 300
    assert people.staff_online_count() == 0
    people.staff_seen(user=sam)
    StaffPresence.objects.create(user=kim, last_seen=timezone.now() - timedelta(minutes=10))
    assert people.staff_online_count() == 1


def _waited(site, seconds: float, sam) -> None:
    """A recorded wait: asked for a person, taken over `seconds` later."""
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    people.request_human(conversation=conversation, source="user")
    people.staff_take_over(conversation=conversation, staff=sam)
    asked = ConversationEvent.objects.get(conversation=conversation, to_status="waiting")
    ConversationEvent.objects.filter(pk=asked.pk).update(
        created_at=asked.created_at - timedelta(seconds=seconds)
    )


def test_the_recorded_waits_are_read_in_one_query(site, sam, django_assert_num_queries):
    """It runs in every status change to `waiting` (the frame's expected wait), inside
    the transaction: one query however many waits are sampled."""
    for seconds in (60, 120, 600):
        _waited(site, seconds, sam)
    with django_assert_num_queries(1):
        waits = people.recent_waits()
    assert sorted(round(w) for w in waits) == [60, 120, 600]


def test_the_expected_wait_comes_from_recorded_waits_the_queue_and_staff_online(site, sam, kim):
    waiting, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    people.request_human(conversation=waiting, source="user")
    # Nothing recorded, nobody online: nothing to estimate from.
    assert people.eta_seconds(conversation=fresh(waiting)) is None
    for seconds in (60, 120, 600):
        _waited(site, seconds, sam)
    StaffPresence.objects.all().delete()
    assert people.eta_seconds(conversation=fresh(waiting)) is None  # nobody online
    people.staff_seen(user=sam)
    assert people.eta_seconds(conversation=fresh(waiting)) == 120  # the median, first in line
    later, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    people.request_human(conversation=later, source="user")
    assert people.queue_position(conversation=fresh(later)) == 2
    assert people.eta_seconds(conversation=fresh(later)) == 240  # two rounds of one person
    people.staff_seen(user=kim)
    assert people.eta_seconds(conversation=fresh(later)) == 120  # one round of two
    status = people.status_payload(conversation=fresh(later))
    assert status.eta_seconds == 120 and "about 2 min" in status.message


def test_the_status_frame_is_the_documented_shape(conversation, sam):
    people.staff_take_over(conversation=conversation, staff=sam)
    frame = json.loads(people.status_frame(conversation=fresh(conversation)).encode())
    assert list(frame)[:5] == ["type", "status", "staff", "eta_seconds", "open_now"]
    assert frame["type"] == "conversation.status"
    assert set(frame) == {
        "type", "status", "staff", "eta_seconds", "open_now",
        "opens_at", "message", "csat", "email_saved",
    }  # fmt: skip
    assert type(protocol.SERVER_FRAMES["conversation.status"]) is type(protocol.StatusChanged)


def test_a_site_without_hours_is_always_open(site):
    assert Site.objects.get(pk=site.pk).opening_hours.count() == 0
    assert people.site_hours(site=site).open_at(timezone.now())


def test_the_escalate_tool_asks_through_a_signal_and_says_when_nobody_listens(conversation):
    from chat.receivers import escalate_for_agent
    from orchestrator import services as orchestrator_services
    from orchestrator.sdk.tools import STEP_EXCLUDED
    from orchestrator.signals import human_requested

    answer = orchestrator_services.human_request(
        conversation_id=conversation.uuid, reason="Needs a refund exception"
    )
    assert answer["ok"] is True and answer["status"] == "waiting"
    assert fresh(conversation).status == "waiting"
    assert "escalate_to_human" in STEP_EXCLUDED  # no conversation is live in a workflow step
    human_requested.disconnect(escalate_for_agent)
    try:
        alone = orchestrator_services.human_request(conversation_id=conversation.uuid, reason="")
    finally:
        human_requested.connect(escalate_for_agent)
    assert alone == {"ok": False, "error": orchestrator_services.NOBODY_TO_ASK}
