"""Per-site masking of card numbers, e-mail addresses and phone numbers (chat.redaction,
docs/privacy.md): Luhn-checked cards only, off by default, applied before the message is
stored, so neither the model (the tests' OpenAI-compatible server) nor the log ever sees
what was masked."""

from __future__ import annotations

import logging

import pytest
from asgiref.sync import sync_to_async

from chat import turns
from chat.models import ConversationEvent, Feedback, Message, Site
from chat.redaction import CARD, EMAIL, PHONE, Redaction, luhn_valid, redact
from tests.chat.test_consumers import open_session, recv, send, until_turn_done
from tests.support.openai_server import Step

ALL = Redaction(cards=True, emails=True, phones=True)
VISA = "4111 1111 1111 1111"  # the classic test number: passes the Luhn check
AMEX = "3782-822463-10005"


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("378282246310005", True),
        ("6011111111111117", True),
        ("79927398713", True),
        ("79927398710", False),
    ],
)
def test_luhn(digits, valid):
    assert luhn_valid(digits) is valid


CARDS = Redaction(cards=True)


@pytest.mark.parametrize(
    ("text", "redaction", "expected"),
    [
        (f"my card is {VISA}, thanks", CARDS, f"my card is {CARD}, thanks"),
        (f"amex {AMEX}.", CARDS, f"amex {CARD}."),
        ("4111-1111-1111-1111", CARDS, CARD),
        ("4111111111111112 is not a card", CARDS, "4111111111111112 is not a card"),  # Luhn
        ("41111111111111111111", CARDS, "41111111111111111111"),  # 20 digits: too long
        ("order 1234567890123", CARDS, "order 1234567890123"),  # 13 digits, Luhn fails
        ("write to lee.k+shop@example.co.uk now", ALL, f"write to {EMAIL} now"),
        ("call +49 30 1234 5678 or (555) 123-4567", ALL, f"call {PHONE} or {PHONE}"),
        ("on 2026-12-04 at 10:30, order F-1001", ALL, "on 2026-12-04 at 10:30, order F-1001"),
        (f"card {VISA} or +44 20 7946 0958", ALL, f"card {CARD} or {PHONE}"),
    ],
)
def test_what_is_masked(text, redaction, expected):
    assert redact(text, redaction) == expected


def test_each_kind_is_masked_only_when_asked_for():
    text = f"{VISA} lee@example.com +44 20 7946 0958"
    assert redact(text, Redaction()) == text
    assert redact(text, Redaction(cards=True)) == f"{CARD} lee@example.com +44 20 7946 0958"
    assert redact(text, Redaction(emails=True)) == f"{VISA} {EMAIL} +44 20 7946 0958"
    assert redact(text, Redaction(phones=True)).endswith(f"lee@example.com {PHONE}")


@pytest.mark.django_db
def test_masking_is_off_for_a_new_site():
    site = Site.objects.create(name="Shop")
    assert Redaction.of_site(site) == Redaction()


# --- The live path: the socket, the turn, the model ---------------------------------------


@pytest.fixture
def server(settings, openai_server):
    settings.OPENAI_BASE_URL = openai_server.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.SUPERORCH_DEFAULT_MODEL = "test-model"
    return openai_server


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=10)


@pytest.mark.django_db(transaction=True)
async def test_the_model_and_the_log_never_see_a_masked_card(team, connect, server, caplog):
    await Site.objects.filter(key="demo").aupdate(redact_cards=True, redact_emails=True)
    server.steps = [Step(text="I have noted it."), Step(text="Noted again.")]
    text = f"I was charged twice on card {VISA}, mail me at lee@example.com"
    with caplog.at_level(logging.DEBUG):
        comm, ready = await open_session(connect)
        await send(comm, {"type": "message.send", "id": "c-1", "text": text})
        frames = await until_turn_done(comm)
        reply = next(f for f in frames if f["type"] == "message.done")["message"]["id"]
        await send(comm, {"type": "feedback", "message": reply, "value": "up", "comment": VISA})
        assert (await recv(comm))["type"] == "feedback.ack"
        await send(comm, {"type": "human.request", "reason": f"about {VISA}"})
        await recv(comm)
    ack = next(f for f in frames if f["type"] == "message.ack")
    assert ack["message"]["text"] == f"I was charged twice on card {CARD}, mail me at {EMAIL}"

    sent_to_model = repr(server.requests)
    assert server.requests and CARD in sent_to_model and EMAIL in sent_to_model
    for secret in ("4111", "lee@example.com"):
        assert secret not in sent_to_model
        assert secret not in caplog.text
    stored = await sync_to_async(
        lambda: (
            [m.text for m in Message.objects.filter(role="user")] + [Feedback.objects.get().comment]
        )
    )()
    assert stored == [f"I was charged twice on card {CARD}, mail me at {EMAIL}", CARD]
    reasons = await sync_to_async(lambda: [e.reason for e in ConversationEvent.objects.all()])()
    assert reasons == [f"about {CARD}"]


@pytest.mark.django_db(transaction=True)
async def test_without_masking_the_text_is_stored_as_written(team, connect, server):
    server.steps = [Step(text="I have noted it.")]
    comm, _ = await open_session(connect)
    await send(comm, {"type": "message.send", "id": "c-1", "text": f"card {VISA}"})
    await until_turn_done(comm)
    assert VISA in repr(server.requests)


@pytest.mark.django_db
def test_masking_costs_no_query(settings):
    """The site's switches come with the conversation the session opened: storing a
    message takes as many queries with masking as without."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat import services

    site = services.site_ensure_default()
    _, token, _ = services.conversation_open(site=site, token=None, user={}, context={})
    counts = []
    for on in (False, True):
        Site.objects.filter(pk=site.pk).update(redact_cards=on)
        site.refresh_from_db()
        conversation, _, resumed = services.conversation_open(
            site=site, token=token, user={}, context={}
        )
        assert resumed
        with CaptureQueriesContext(connection) as queries:
            message, _ = services.message_receive(
                conversation=conversation, client_id=f"c-{on}", text=f"card {VISA}"
            )
        counts.append(len(queries))
        assert not [q for q in queries if 'FROM "chat_site"' in q["sql"]]  # not read again
        assert (CARD in message.text) is on
    assert counts[0] == counts[1]
