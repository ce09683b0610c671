"""Conversation-aware routing with the seeded team's trained router: route_decide with a
turn's history (what the live chat passes), `routing_eval --dialogues`, "Try routing"."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from orchestrator import services
from orchestrator.services import SEED_FILE

SYNC = "my tasks aren't syncing between my phone and laptop"
ASIDE = "what's the capital of Australia?"
BACK = "the phone still shows yesterday's tasks"


def _history(*turns):
    """[(user text, agent who answered)...] then the message being routed."""
    *answered, (text,) = turns
    rows = []
    for user, agent in answered:
        rows += [
            {"role": "user", "content": user},
            {"role": "assistant", "content": "", "agent": agent},
        ]
    return [*rows, {"role": "user", "content": text}]


def test_an_aside_goes_to_the_general_assistant_and_the_next_message_back(team):
    aside = services.route_decide(
        text=ASIDE,
        active="technical_support",
        history=_history((SYNC, "technical_support"), (ASIDE,)),
    )
    assert (aside.agent, aside.path, aside.move) == ("general_assistant", "fallback", "aside")
    back = services.route_decide(
        text=BACK,
        active="general_assistant",
        history=_history((SYNC, "technical_support"), (ASIDE, "general_assistant"), (BACK,)),
    )
    assert (back.agent, back.move) == ("technical_support", "return")


def test_without_the_conversation_the_same_aside_stays_sticky_only_if_it_reads_as_one(team):
    # The message alone, as before this policy: the router is sure nothing fits, so even a
    # sticky conversation lets it go.
    decision = services.route_decide(text=ASIDE, active="technical_support")
    assert decision.agent == "general_assistant"


def test_a_short_follow_up_stays_with_the_specialist(team):
    text = "yes I'm signed in on both"
    decision = services.route_decide(
        text=text,
        active="technical_support",
        history=_history((SYNC, "technical_support"), (text,)),
    )
    assert (decision.agent, decision.move) == ("technical_support", "follow_up")


def test_a_clear_topic_change_moves(team):
    text = "different question, where do I download my invoices?"
    decision = services.route_decide(
        text=text,
        active="technical_support",
        history=_history((SYNC, "technical_support"), (text,)),
    )
    assert (decision.agent, decision.path, decision.move) == ("billing", "fast", "topic_change")


def test_a_request_for_a_person_is_marked(team):
    text = "this is going nowhere, can I talk to a human please"
    decision = services.route_decide(
        text=text,
        active="technical_support",
        history=_history((SYNC, "technical_support"), (text,)),
    )
    assert (decision.agent, decision.path) == ("general_assistant", "fallback")
    assert decision.wants_person and decision.as_dict()["move"] == "person"


# --- routing_eval --dialogues ------------------------------------------------------------


def _dialogues(tmp_path, lines):
    path = tmp_path / "dialogues.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_routing_eval_scores_dialogues_by_kind(tmp_path, capsys, db):
    path = _dialogues(
        tmp_path,
        [
            {
                "turns": [
                    [SYNC, "technical_support"],
                    ["yes I'm signed in on both", "technical_support"],
                    [ASIDE, "general_assistant"],
                    [BACK, "technical_support"],
                    ["can I talk to a human?", "general_assistant", "person"],
                ]
            },
            {"text": "I was charged twice this month", "expected": "billing"},
        ],
    )
    call_command("routing_eval", "--dialogues", path, "--json")
    result = json.loads(capsys.readouterr().out)
    assert (result["dialogues"], result["turns"]) == (2, 6)
    kinds = {k: v["turns"] for k, v in result["by_kind"].items()}
    assert kinds == {"first": 2, "follow_up": 1, "aside": 1, "return": 1, "person": 1}
    assert result["accuracy"] == 1.0 and result["mistakes"] == []
    assert result["person_flagged"] == 1 and result["person_false_flags"] == 0
    assert (result["fallback_expected"], result["fallback_right"]) == (2, 2)


def test_routing_eval_dialogues_prints_plain_lines_with_mistakes(tmp_path, capsys, db):
    path = _dialogues(tmp_path, [{"turns": [["I was charged twice this month", "product_info"]]}])
    call_command("routing_eval", "--dialogues", path, "--mistakes", "--team", SEED_FILE)
    out = capsys.readouterr().out
    assert "1 dialogues, 1 turns: 0 right (0.0)." in out
    assert "expected product_info, got billing" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "line 1: not valid JSON"),
        ('{"turns": []}\n', "line 1: expected"),
        ('{"turns": [["hi"]]}\n', 'line 1, turn 1: expected ["text", "agent"]'),
        ('{"turns": [["hi", "sales"]]}\n', "line 1, turn 1: unknown agent 'sales' (known: billing"),
        ('{"turns": [["hi", "billing", "chat"]]}\n', "unknown kind 'chat' (kinds: first"),
        ("\n", "has no dialogues"),
    ],
)
def test_routing_eval_dialogues_explains_bad_files(tmp_path, content, message, db):
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace("[", r"\[")):
        call_command("routing_eval", "--dialogues", path)


def test_routing_eval_needs_cases_or_dialogues(tmp_path, db):
    with pytest.raises(
        CommandError, match="Give --examples and --cases, --clinc-full, or --dialogues"
    ):
        call_command("routing_eval")
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("routing_eval", "--dialogues", tmp_path / "nope.jsonl")


def test_routing_eval_dialogues_on_the_current_registry(tmp_path, capsys, team):
    path = _dialogues(
        tmp_path, [{"turns": [[SYNC, "technical_support"], [ASIDE, "general_assistant"]]}]
    )
    call_command("routing_eval", "--dialogues", path, "--registry", "--json")
    assert json.loads(capsys.readouterr().out)["accuracy"] == 1.0


# --- Try routing -------------------------------------------------------------------------


def test_try_routing_reads_the_earlier_messages(admin_client, team):
    url = reverse("admin:orchestrator_try_routing")
    alone = admin_client.get(url, {"q": BACK, "active": "general_assistant"}).content.decode()
    assert 'data-testid="route-move">first<' in alone  # nothing known before it
    page = admin_client.get(
        url,
        {
            "q": BACK,
            "active": "general_assistant",
            "earlier": f"{SYNC}\n",
            "before": "technical_support",
        },
    )
    html = page.content.decode()
    assert 'data-testid="route-agent">technical_support<' in html
    assert 'data-testid="route-move">return<' in html
    person = admin_client.get(
        url, {"q": "get me a real agent", "active": "billing"}
    ).content.decode()
    assert ">general_assistant<" in person and "asks for a person" in person
