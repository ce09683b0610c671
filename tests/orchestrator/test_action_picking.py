"""The offline model's actions, pure: picking from the examples, filling from the words,
asking for what is missing, and answering from the output."""

from __future__ import annotations

import json

import pytest

from orchestrator import action_picking as picking
from orchestrator.answers import Turn
from orchestrator.domain.actions import ActionSpec, data_block
from orchestrator.services import SEED_FILE

SEED = json.loads(SEED_FILE.read_text(encoding="utf-8"))["actions"]
ACTIONS = [
    ActionSpec(
        name=a["name"],
        description=a["description"],
        method=a["method"],
        examples=tuple(a["examples"]),
        schema=a["arguments_schema"],
    )
    for a in SEED
]
LOOKUP, REFUND = ACTIONS


def pick(text, history=()):
    return picking.pick(ACTIONS, text=text, history=list(history))


@pytest.mark.parametrize(
    ("text", "action", "arguments"),
    [
        (
            "what is the status of invoice ACME-2024-000123?",
            "lookup_invoice",
            {"number": "ACME-2024-000123"},
        ),
        (
            "has invoice acme-2024-000123 been paid?",
            "lookup_invoice",
            {"number": "ACME-2024-000123"},
        ),
        (
            "refund 20.00 of invoice ACME-2024-000123",
            "request_refund",
            {"invoice": "ACME-2024-000123", "amount": "20.00"},
        ),
        (
            "please refund €12.50 of invoice ACME-2024-000124.",
            "request_refund",
            {"invoice": "ACME-2024-000124", "amount": "12.50"},
        ),
        # A workflow step names its action.
        (
            "Look up the invoice with lookup_invoice: ACME-2024-000125",
            "lookup_invoice",
            {"number": "ACME-2024-000125"},
        ),
    ],
)
def test_picks_the_action_and_fills_its_arguments_from_the_words(text, action, arguments):
    chosen = pick(text)
    assert (chosen.action.name, chosen.arguments, chosen.missing) == (action, arguments, ())


@pytest.mark.parametrize(
    "text",
    [
        "where do I find last quarter's invoices for our accountant?",
        "my invoce has the wrong amount",
        "Why did you take $144 from my account when I expected $120?",
        "I'd like a refund, please",  # no invoice: the refund examples all name one
        "how do I cancel my subscription?",
        "",
    ],
)
def test_ordinary_questions_pick_no_action(text):
    assert pick(text) is None


def test_a_missing_argument_is_asked_for_with_its_description():
    chosen = pick("what's the status of my invoice?")
    assert chosen.action is LOOKUP and chosen.missing == ("number",)
    assert picking.ask(chosen) == (
        "Which invoice? Please tell me the invoice number, like ACME-2024-000123."
    )
    refund = pick("I'd like a refund for invoice ACME-2024-000123")
    assert refund.missing == ("amount",)
    assert picking.ask(refund).startswith("How much should be refunded?")  # its x-question


EARLIER = [
    Turn("user", "I have a question about invoice ACME-2024-000123"),
    Turn("assistant", "Of course, what would you like to know?"),
]


def asked(text="what's the status of my invoice?"):
    question = picking.ask(pick(text, EARLIER))
    return question, [*EARLIER, Turn("user", text), Turn("assistant", question)]


def test_a_value_seen_earlier_is_suggested_then_confirmed():
    question, history = asked()
    assert question == "Which invoice? It looks like ACME-2024-000123."
    for yes in ("yes", "Yes please", "that's right", "ok"):
        chosen = pick(yes, history)
        assert (chosen.action, chosen.arguments, chosen.missing) == (
            LOOKUP,
            {"number": "ACME-2024-000123"},
            (),
        )


def test_the_answer_can_be_another_value_or_something_else_entirely():
    _, history = asked()
    assert pick("no, ACME-2024-000999", history).arguments == {"number": "ACME-2024-000999"}
    assert pick("how do I cancel my subscription?", history) is None
    # A reply that is not this model's question is not answered as one.
    other = [*history[:-1], Turn("assistant", "Which invoice do you mean?")]
    assert pick("yes", other) is None


def test_two_questions_in_a_row_complete_one_call():
    history = [Turn("user", "I'd like a refund for invoice ACME-2024-000123")]
    history.append(Turn("assistant", picking.ask(pick(history[0].text))))
    chosen = pick("49.00", history)
    assert chosen.action is REFUND and chosen.missing == ()
    assert chosen.arguments == {"invoice": "ACME-2024-000123", "amount": "49.00"}


def test_the_reply_lists_what_the_system_returned():
    output = data_block(
        "The answer", {"number": "ACME-2024-000123", "status": "paid", "amount": "49.00"}
    )
    reply = picking.reply(LOOKUP, {"number": "ACME-2024-000123"}, output)
    assert reply.splitlines()[0] == "Here's what I found for invoice ACME-2024-000123:"
    assert "- Status: paid" in reply and "- Amount: 49.00" in reply
    listing = picking.reply(REFUND, {}, data_block("x", [{"id": "rf_1", "amount": "5.00"}]))
    assert listing.startswith("Done. Here's what the system recorded:") and "id: rf_1" in listing
    error = picking.reply(LOOKUP, {}, json.dumps({"ok": False, "error": "Nothing was found."}))
    assert error == "I'm sorry, I couldn't do that. Nothing was found."
