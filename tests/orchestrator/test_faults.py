"""Fault injection through the loopback OpenAI-compatible server: HTTP 500s, timeouts, a
stream that breaks midway, malformed JSON, a slow first token. For each: the retries,
the circuit breaker, the fallback, what the user is told, what the AgentRuns record.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from orchestrator import runtime, selectors, services
from orchestrator.models import AgentHealth, AgentProfile, AgentRun
from tests.support.openai_server import Step

pytestmark = pytest.mark.django_db(transaction=True)

CHARGED_TWICE = "I was charged twice for my subscription"  # routed to Billing (fast path)
OK = Step(text="Only one of the two charges is real.")


@pytest.fixture
def server(settings, openai_server):
    settings.OPENAI_BASE_URL = openai_server.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.SUPERORCH_DEFAULT_MODEL = "test-model"
    settings.SUPERORCH_MODEL_RETRIES = 1
    return openai_server


class Recorder:
    def __init__(self) -> None:
        self.events: list = []

    async def __call__(self, event) -> None:
        self.events.append(event)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.of(runtime.MessageDelta))


async def turn(text: str = CHARGED_TWICE):
    rec = Recorder()
    request = runtime.TurnRequest(uuid.uuid4(), uuid.uuid4(), [{"role": "user", "content": text}])
    return await runtime.run_turn(request, rec), rec


async def runs():
    return [
        (r.agent_slug, r.status, r.error_kind)
        async for r in AgentRun.objects.order_by("id").only("agent_slug", "status", "error_kind")
    ]


async def test_an_http_500_is_retried_and_the_user_gets_one_answer(team, server):
    server.steps = [Step(status=500), OK]
    outcome, rec = await turn()
    assert outcome.status == "ok" and rec.text == OK.text
    assert await runs() == [("billing", "error", "server_error"), ("billing", "ok", "")]
    health = await AgentHealth.objects.aget(agent_slug="billing")
    assert (health.state, health.consecutive_failures) == ("closed", 0)  # the success reset it


async def test_a_silent_model_times_out_and_the_retry_answers(team, server):
    await AgentProfile.objects.filter(slug="billing").aupdate(timeout_seconds=1)
    server.steps = [Step(text="too late", first_token_delay=3), OK]
    outcome, rec = await turn()
    assert outcome.status == "ok" and rec.text == OK.text
    assert await runs() == [("billing", "error", "timeout"), ("billing", "ok", "")]
    first = await AgentRun.objects.order_by("id").afirst()
    assert "said nothing for 1s" in first.error


async def test_a_slow_first_token_within_the_limit_is_just_slow(team, server):
    server.steps = [Step(text="worth the wait", first_token_delay=0.6)]
    outcome, rec = await turn()
    assert outcome.status == "ok" and rec.text == "worth the wait"
    run = await AgentRun.objects.aget()
    assert run.status == "ok" and run.ttft_ms >= 600


async def test_a_stream_broken_before_any_text_is_retried(team, server):
    server.steps = [Step(text="one two three", break_after=1), OK]
    outcome, rec = await turn()
    assert outcome.status == "ok" and rec.text == OK.text
    assert await runs() == [("billing", "error", "stream_broken"), ("billing", "ok", "")]


async def test_a_stream_broken_midway_is_an_error_not_half_an_answer(team, server):
    # The user already saw the first words: retrying would repeat them, so the turn ends
    # as "no model could answer" (the chat queues the message), keeping what was shown.
    server.steps = [
        Step(text="one two three four five six seven eight", break_after=4, token_delay=0.05)
    ]
    outcome, rec = await turn()
    assert outcome.status == "error" and outcome.error_code == "model_unavailable"
    assert outcome.error_message == runtime.QUEUED_FOR_LATER
    (done,) = rec.of(runtime.MessageDone)
    assert done.text == rec.text and 0 < len(rec.text) < len("one two three four five six")
    assert await runs() == [("billing", "error", "stream_broken")]
    assert len(server.requests) == 1


async def test_malformed_json_from_the_server_is_a_model_error(team, server):
    server.steps = [Step(text="a b c d", malformed=True), OK]
    outcome, rec = await turn()
    assert outcome.status == "ok" and rec.text == OK.text
    assert await runs() == [("billing", "error", "bad_response"), ("billing", "ok", "")]


async def test_when_the_agent_keeps_failing_its_alternative_answers(team, server):
    support = await AgentProfile.objects.aget(slug="customer_support")
    await AgentProfile.objects.filter(slug="billing").aupdate(alternative=support)
    server.steps = [Step(status=500), Step(status=503), Step(text="Customer Support here.")]
    outcome, rec = await turn()
    assert outcome.status == "ok" and outcome.final_agent.slug == "customer_support"
    assert rec.text == "Customer Support here."
    changes = [(c.previous.slug, c.current.slug, c.reason) for c in rec.of(runtime.AgentChanged)]
    assert changes == [
        ("orchestrator", "billing", "route"),
        ("billing", "customer_support", "fallback"),
    ]
    assert await runs() == [
        ("billing", "error", "server_error"),
        ("billing", "error", "server_error"),
        ("customer_support", "ok", ""),
    ]


async def test_when_every_option_fails_the_turn_degrades_gracefully(team, server):
    server.responder = lambda body: Step(status=500)
    outcome, rec = await turn()
    assert outcome.status == "error" and outcome.error_code == "model_unavailable"
    assert outcome.error_message == runtime.QUEUED_FOR_LATER
    assert "saved and will be answered" in outcome.error_message
    for leak in ("500", "Traceback", "APIStatusError", "openai"):
        assert leak not in outcome.error_message
    # Billing, its retry, then the fallback agent: each attempt recorded with its error.
    assert await runs() == [
        ("billing", "error", "server_error"),
        ("billing", "error", "server_error"),
        ("general_assistant", "error", "server_error"),
    ]
    assert [c.reason for c in rec.of(runtime.AgentChanged)] == ["route", "fallback"]


async def test_the_breaker_opens_routing_skips_the_agent_and_a_probe_closes_it(
    team, server, settings
):
    settings.SUPERORCH_BREAKER_FAILURES = 2
    settings.SUPERORCH_BREAKER_COOLDOWN = 3600
    support = await AgentProfile.objects.aget(slug="customer_support")
    await AgentProfile.objects.filter(slug="billing").aupdate(alternative=support)
    server.steps = [Step(status=500), Step(status=500), Step(text="Support covering.")]
    await turn()
    health = await AgentHealth.objects.aget(agent_slug="billing")
    assert health.state == "open" and "500" in health.last_error
    assert (await sync_to_async(selectors.breaker_states)())["billing"] == "open"

    # The next billing question goes straight to the alternative: no call to Billing's model.
    server.steps = [Step(text="Support again.")]
    outcome, rec = await turn()
    (routed,) = rec.of(runtime.RouteDecided)
    assert routed.decision.agent == "customer_support"
    assert (
        routed.decision.skipped[0][0] == "billing"
        and "circuit open" in routed.decision.skipped[0][1]
    )
    assert outcome.final_agent.slug == "customer_support" and len(server.requests) == 4

    # After the cooldown the breaker lets one probe through; its success closes it.
    settings.SUPERORCH_BREAKER_COOLDOWN = 0
    assert (await sync_to_async(selectors.breaker_states)())["billing"] == "half_open"
    server.steps = [Step(text="Billing is back.")]
    outcome, rec = await turn()
    assert outcome.final_agent.slug == "billing" and rec.text == "Billing is back."
    health = await AgentHealth.objects.aget(agent_slug="billing")
    assert (health.state, health.consecutive_failures) == ("closed", 0)


def test_a_half_open_breaker_lets_exactly_one_probe_through(team, settings):
    settings.SUPERORCH_BREAKER_FAILURES = 1
    settings.SUPERORCH_BREAKER_COOLDOWN = 60
    services.agent_health_record(agent_slug="billing", ok=False, error="x")
    AgentHealth.objects.filter(agent_slug="billing").update(
        opened_at=timezone.now() - timedelta(seconds=61)
    )
    first = services.route_decide(text=CHARGED_TWICE)
    second = services.route_decide(text=CHARGED_TWICE)
    assert first.agent == "billing" and not first.skipped  # the probe
    assert second.agent != "billing" and "circuit open" in second.skipped[0][1]


def test_a_failed_probe_opens_the_breaker_again(team, settings):
    settings.SUPERORCH_BREAKER_FAILURES = 1
    settings.SUPERORCH_BREAKER_COOLDOWN = 0
    assert services.agent_health_record(agent_slug="billing", ok=False, error="x") == "open"
    assert selectors.breaker_states() == {"billing": "half_open"}
    assert services.agent_health_record(agent_slug="billing", ok=False, error="y") == "open"
    assert services.agent_health_record(agent_slug="billing", ok=True) == "closed"
    assert selectors.breaker_states() == {}


async def test_a_hanging_model_spends_one_silence_budget_not_a_full_timeout_per_attempt(
    team, server, settings
):
    # Billing's own limit is 1 s of silence; the turn may spend 1.5 s in all. The first
    # attempt spends 1 s, the retry is given the 0.5 s left, then recovery gives up (the
    # fallback agent is not tried with nothing left): about 1.5 s, not three full seconds.
    settings.SUPERORCH_TURN_SILENCE_BUDGET = 1.5
    await AgentProfile.objects.filter(slug="billing").aupdate(timeout_seconds=1)
    server.responder = lambda body: Step(text="too late", first_token_delay=4)
    started = timezone.now()
    outcome, rec = await turn()
    took = (timezone.now() - started).total_seconds()
    assert outcome.status == "error" and outcome.error_code == "model_unavailable"
    assert len(server.requests) == 2 and took < 2.5
    errors = [r.error async for r in AgentRun.objects.order_by("id")]
    assert "said nothing for 1s" in errors[0] and "said nothing for 0.5s" in errors[1]
