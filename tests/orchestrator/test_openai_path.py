"""The OpenAI-compatible path, end to end through a real HTTP server on 127.0.0.1."""

import uuid

import pytest

from orchestrator import runtime
from orchestrator.models import AgentRun
from tests.support.openai_server import Step

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def compatible(settings, openai_server):
    settings.OPENAI_BASE_URL = openai_server.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.SUPERORCH_DEFAULT_MODEL = "test-model"
    return openai_server


def turn_request(text):
    return runtime.TurnRequest(
        conversation_id=uuid.uuid4(),
        turn_id=uuid.uuid4(),
        history=[{"role": "user", "content": text}],
    )


async def test_streamed_handoff_and_tool_call_over_chat_completions(
    team, compatible, orchestrator_decides
):
    compatible.steps = [
        Step(tool_calls=[("transfer_to_billing", {})]),
        Step(tool_calls=[("search_knowledge", {"query": "charged twice"})]),
        Step(text="Only one of the two charges is real; the other drops off in 3-5 business days."),
    ]
    events = []

    async def emit(event):
        events.append(event)

    outcome = await runtime.run_turn(turn_request("I was charged twice"), emit)

    assert outcome.status == "ok", outcome.error_detail
    assert outcome.final_agent.slug == "billing"
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["RouteDecided", "AgentChanged"]
    assert events[0].decision.path == "orchestrator"
    assert "ToolStarted" in kinds and kinds[-1] == "MessageDone"
    deltas = [e.text for e in events if isinstance(e, runtime.MessageDelta)]
    assert len(deltas) > 5  # streamed word by word over SSE
    assert "".join(deltas) == events[-1].text

    first, second, third = compatible.requests
    assert first["stream"] is True and first["model"] == "test-model"
    assert "transfer_to_billing" in {t["function"]["name"] for t in first["tools"]}
    assert "search_knowledge" in {t["function"]["name"] for t in second["tools"]}
    tool_message = third["messages"][-1]
    assert tool_message["role"] == "tool" and "I was charged twice" in tool_message["content"]

    runs = [r async for r in AgentRun.objects.order_by("id")]
    assert [(r.agent_slug, r.provider, r.status) for r in runs] == [
        ("orchestrator", "openai_compatible", "handoff"),
        ("billing", "openai_compatible", "ok"),
    ]
    assert runs[1].output_tokens > 0 and runs[1].ttft_ms is not None


async def test_http_500_from_the_server_is_a_clean_model_unavailable(team, compatible):
    compatible.responder = lambda body: Step(status=500)
    outcome = await runtime.run_turn(turn_request("hello"), lambda e: _noop())
    assert outcome.status == "error" and outcome.error_code == "model_unavailable"
    assert "saved" in outcome.error_message
    runs = [r async for r in AgentRun.objects.all()]
    assert runs and all(r.status == "error" and r.error_kind == "server_error" for r in runs)


async def test_agent_on_openai_without_a_key_is_reported_not_crashed(team, settings):
    from orchestrator.models import AgentProfile

    await AgentProfile.objects.filter(slug="orchestrator").aupdate(model_provider="openai")
    settings.OPENAI_API_KEY = ""
    outcome = await runtime.run_turn(turn_request("hello"), lambda e: _noop())
    assert outcome.status == "error" and outcome.error_code == "model_unavailable"
    assert "OPENAI_API_KEY" in outcome.error_detail


async def _noop():
    return None
