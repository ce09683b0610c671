"""Routing within a conversation (domain.routing_policy with domain.conversation), over a
scripted router: what each message scores is set by the test, so each rule is seen alone."""

from __future__ import annotations

import pytest

from orchestrator.domain.conversation import (
    Conversation,
    conversation_from_history,
    read_message,
    wants_person,
)
from orchestrator.domain.enums import AgentRole, ConversationMove, RoutePath
from orchestrator.domain.routing_policy import Policy, Ranking, decide
from orchestrator.domain.team import AgentSpec, Team

SPECIALISTS = ("billing", "tech", "account")


def _agent(slug: str, role: str = AgentRole.SPECIALIST) -> AgentSpec:
    return AgentSpec(slug, slug.title(), role, "", "", "local", "", True)


TEAM = Team(
    agents={
        "orchestrator": _agent("orchestrator", AgentRole.ORCHESTRATOR),
        "assistant": _agent("assistant", AgentRole.FALLBACK),
        **{slug: _agent(slug) for slug in SPECIALISTS},
    }
)
POLICY = Policy(threshold=0.5)


class ScriptedRouter:
    """Scores set per text: {text: {agent: confidence}}; anything else fits no one."""

    def __init__(self, scores: dict[str, dict[str, float]]) -> None:
        self.scores = scores
        self.asked: list[str] = []

    def route(self, text: str) -> Ranking:
        self.asked.append(text)
        scores = self.scores.get(text, {})
        ranked = tuple(sorted(((a, scores.get(a, 0.05)) for a in SPECIALISTS), key=lambda p: -p[1]))
        best, confidence = ranked[0]
        return Ranking(best if confidence >= 0.5 else None, confidence, ranked)


def _route(router, text, history, active):
    history = [*history, {"role": "user", "content": text}]
    conversation = conversation_from_history(history, active=active, specialists=SPECIALISTS)
    return decide(team=TEAM, router=router, text=text, policy=POLICY, conversation=conversation)


def test_an_aside_releases_a_sticky_conversation_and_the_next_message_returns():
    sync = "my tasks aren't syncing between my phone and laptop"
    weather = "what's the weather in Paris?"
    back = "the phone still shows yesterday's tasks"
    router = ScriptedRouter({sync: {"tech": 0.95}, weather: {"tech": 0.1}, back: {"tech": 0.7}})
    history = [
        {"role": "user", "content": sync},
        {"role": "assistant", "content": "Are you signed in on both?", "agent": "tech"},
    ]
    aside = _route(router, weather, history, active="tech")
    # The router is sure nothing fits: before, the sticky rule kept Tech on it.
    assert (aside.agent, aside.path, aside.move) == ("assistant", RoutePath.FALLBACK, "aside")
    assert not aside.wants_person
    history += [
        {"role": "user", "content": weather},
        {"role": "assistant", "content": "Sunny.", "agent": "assistant"},
    ]
    returned = _route(router, back, history, active="assistant")
    assert (returned.agent, returned.move) == ("tech", ConversationMove.RETURN)


def test_after_an_aside_an_unsure_follow_up_still_returns_to_the_specialist():
    history = [
        {"role": "user", "content": "I was charged twice"},
        {"role": "assistant", "content": "", "agent": "billing"},
        {"role": "user", "content": "tell me a joke"},
        {"role": "assistant", "content": "", "agent": "assistant"},
    ]
    router = ScriptedRouter({"so when does the second one go away?": {"billing": 0.35}})
    decision = _route(router, "so when does the second one go away?", history, "assistant")
    assert (decision.agent, decision.path, decision.move) == ("billing", RoutePath.STICKY, "return")


@pytest.mark.parametrize("text", ["yes I'm signed in on both", "error 409", "and how much?"])
def test_a_follow_up_stays_even_when_a_keyword_points_elsewhere(text):
    history = [
        {"role": "user", "content": "I want a refund for this month"},
        {"role": "assistant", "content": "", "agent": "billing"},
    ]
    # On its own the message looks like another specialist's; it answers the agent.
    router = ScriptedRouter({text: {"account": 0.8, "billing": 0.3}})
    decision = _route(router, text, history, active="billing")
    assert (decision.agent, decision.path, decision.move) == (
        "billing",
        RoutePath.STICKY,
        "follow_up",
    )


def test_an_aside_after_a_clear_first_message_is_not_read_joined_to_it():
    previous = "my tasks aren't syncing between my phone and laptop"
    text = "what's 17 times 23?"
    # Joined to the first message the aside looks on-topic; on its own nothing fits.
    router = ScriptedRouter({text: {"tech": 0.3}, f"{previous} {text}": {"tech": 0.98}})
    history = [
        {"role": "user", "content": previous},
        {"role": "assistant", "content": "", "agent": "tech"},
    ]
    decision = _route(router, text, history, active="tech")
    assert (decision.agent, decision.move) == ("assistant", "aside")


def test_a_clear_topic_change_moves_to_the_new_specialist():
    previous = "the app crashes when I open it"
    text = "different question, where do I download my invoices?"
    router = ScriptedRouter(
        {text: {"billing": 0.95, "tech": 0.2}, f"{previous} {text}": {"billing": 0.9}}
    )
    history = [
        {"role": "user", "content": previous},
        {"role": "assistant", "content": "", "agent": "tech"},
    ]
    decision = _route(router, text, history, active="tech")
    assert (decision.agent, decision.path, decision.move) == (
        "billing",
        RoutePath.FAST,
        "topic_change",
    )


def test_a_topic_change_that_reads_as_the_current_topic_with_its_context_stays():
    previous = "my tasks aren't syncing"
    text = "we are signed in with the same account on both devices"
    router = ScriptedRouter(
        {text: {"account": 0.8, "tech": 0.3}, f"{previous} {text}": {"tech": 0.9}}
    )
    history = [
        {"role": "user", "content": previous},
        {"role": "assistant", "content": "", "agent": "tech"},
    ]
    assert _route(router, text, history, active="tech").agent == "tech"


@pytest.mark.parametrize(
    "text",
    [
        "can I talk to a human?",
        "get me a real agent",
        "I'd rather speak to someone from your team",
        "this is ridiculous, let me talk to your manager",
        "please have a person call me",
        "I want a human right now",
        "put me through to a real person",
    ],
)
def test_a_request_for_a_person_goes_to_the_fallback_marked_as_such(text):
    history = [
        {"role": "user", "content": "I was charged twice"},
        {"role": "assistant", "content": "", "agent": "billing"},
    ]
    router = ScriptedRouter({text: {"billing": 0.9}})  # even when the router places it
    decision = _route(router, text, history, active="billing")
    assert (decision.agent, decision.path, decision.move) == (
        "assistant",
        RoutePath.FALLBACK,
        "person",
    )
    assert decision.wants_person and decision.as_dict()["wants_person"] is True


@pytest.mark.parametrize(
    "text",
    [
        "are you a bot or a real person?",
        "is this a real person?",
        "I need to add three people to our workspace",
        "how do I connect Slack to our support team's channel?",
        "remove someone who left the company",
    ],
)
def test_questions_about_people_are_not_requests_for_one(text):
    assert not wants_person(text)


def test_a_new_conversation_routes_on_the_message_alone():
    router = ScriptedRouter({"I was charged twice": {"billing": 0.9}})
    first = _route(router, "I was charged twice", [], active=None)
    assert (first.agent, first.path, first.move) == ("billing", RoutePath.FAST, "first")
    nothing = _route(ScriptedRouter({}), "hello", [], active=None)
    assert (nothing.agent, nothing.path) == ("assistant", RoutePath.FALLBACK)


def test_the_previous_specialist_comes_from_the_replies():
    history = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "x", "agent": "billing"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "Did that work?", "agent": "assistant"},
        {"role": "user", "content": "c"},
    ]
    conversation = conversation_from_history(history, active="assistant", specialists=SPECIALISTS)
    assert conversation == Conversation(
        active="assistant",
        previous_specialist="billing",
        earlier=("a", "b"),
        agent_said="Did that work?",
    )
    assert conversation.agent_asked


def test_thanks_is_small_talk_and_a_short_answer_to_a_question_holds_the_topic():
    assert read_message("ok thanks, bye!", Conversation()).social
    asked = Conversation(agent_said="Which browser are you using?")
    assert read_message("chrome on my work mac laptop", asked).answers
    assert not read_message(
        "chrome on my work mac laptop", Conversation(agent_said="Done.")
    ).answers


@pytest.mark.parametrize(
    "text",
    ["k that worked. bye", "got it, it was in spam. thanks a lot, bye", "awesome. cheers"],
)
def test_a_farewell_closes_even_when_the_router_is_sure_of_the_specialist(text):
    crash = "the android app crashes every time i open it"
    router = ScriptedRouter({crash: {"tech": 0.95}, text: {"tech": 0.8}})
    history = [{"role": "user", "content": crash}, {"role": "assistant", "content": "Try this"}]
    decision = _route(router, text, history, active="tech")
    assert (decision.agent, decision.move) == ("assistant", ConversationMove.ASIDE)


def test_a_farewell_that_asks_something_is_not_a_farewell():
    crash = "the android app crashes every time i open it"
    text = "thanks. will it be fixed in the next version? bye"
    question = "will it be fixed in the next version? bye"  # routed without the thanks
    router = ScriptedRouter({crash: {"tech": 0.95}, question: {"tech": 0.8}})
    history = [{"role": "user", "content": crash}, {"role": "assistant", "content": "Try this"}]
    assert _route(router, text, history, active="tech").agent == "tech"


def test_a_that_worked_opening_is_dropped_and_the_rest_is_routed():
    crash = "the android app crashes every time i open it"
    joke = "tell me a joke, I deserve it"
    router = ScriptedRouter({crash: {"tech": 0.95}, "ok retry worked. " + joke: {"tech": 0.6}})
    history = [{"role": "user", "content": crash}, {"role": "assistant", "content": "Retry"}]
    decision = _route(router, "ok retry worked. " + joke, history, active="tech")
    assert joke in router.asked
    assert (decision.agent, decision.move) == ("assistant", ConversationMove.ASIDE)


def test_an_announced_new_subject_that_fits_no_one_is_an_aside():
    crash = "the android app crashes every time i open it"
    text = "totally unrelated: what's 15% of 240?"
    router = ScriptedRouter({crash: {"tech": 0.95}, text: {"tech": 0.45}})
    history = [{"role": "user", "content": crash}, {"role": "assistant", "content": "Retry"}]
    assert _route(router, text, history, active="tech").move == ConversationMove.ASIDE


@pytest.mark.parametrize(
    "text",
    [
        "this is the third time i'm asking, i want a manager",
        "is there a human I can chat with instead?",
        "I demand to speak to your supervisor",
    ],
)
def test_more_ways_to_ask_for_a_person(text):
    assert wants_person(text)
