"""Which messages a site that declines off-topic use still answers (pure rules)."""

from __future__ import annotations

import pytest

from orchestrator.domain.enums import GuardrailName
from orchestrator.domain.off_topic import DEFAULT_REPLY, OffTopicRule, is_social, off_topic_verdict


@pytest.mark.parametrize(
    "text",
    [
        "hi",
        "Hello there!",
        "good morning",
        "thanks, that's all",
        "thank you so much!",
        "Thanks for your help",
        "thanks, that's all for today",
        "ok thanks, bye",
        "that’s all, thanks",
        "ok thanks",
        "bye",
        "have a great weekend",
        "are you a bot or a human?",
        "what can you do?",
        "Danke!",
        "merci beaucoup",
        "hola",
        "buenos días",
        "👋 hi",
    ],
)
def test_social_messages_are_answered_whatever_the_site(text):
    assert is_social(text)


@pytest.mark.parametrize(
    "text",
    [
        "what's the weather in Paris?",
        "tell me a joke",
        "write my history essay about the French revolution",
        "hi, can you write me a poem about cats",
        "what's 17 times 23?",
        "thanks but what is the capital of Australia",
        "",
    ],
)
def test_requests_are_not_social(text):
    assert not is_social(text)


def test_only_what_reaches_the_fallback_agent_is_declined():
    off = off_topic_verdict(
        text="tell me a joke", agent="general", fallback="general", wants_person=False
    )
    assert off.blocked and off.guardrail == GuardrailName.OFF_TOPIC and off.kind == "off_topic"
    on = off_topic_verdict(
        text="tell me a joke", agent="billing", fallback="general", wants_person=False
    )
    assert not on.blocked and on.kind == ""
    hello = off_topic_verdict(
        text="hello!", agent="general", fallback="general", wants_person=False
    )
    assert not hello.blocked
    person = off_topic_verdict(
        text="a human please", agent="general", fallback="general", wants_person=True
    )
    assert not person.blocked
    no_fallback = off_topic_verdict(
        text="tell me a joke", agent="x", fallback=None, wants_person=False
    )
    assert not no_fallback.blocked


def test_the_sites_rule():
    assert OffTopicRule.for_site(decline=False, reply="x", site_name="Acme") is None
    assert OffTopicRule.for_site(
        decline=True, reply="  Only Acme, sorry. ", site_name="A"
    ).reply == ("Only Acme, sorry.")
    assert OffTopicRule.for_site(decline=True, reply="", site_name="Acme").reply == (
        DEFAULT_REPLY.format(site="Acme")
    )
