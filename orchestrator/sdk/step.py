"""One workflow step: one agent answers one instruction (no handoffs, no streaming).

The agent gets the conversation's shared context and its own tools (not
execute_workflow: a step cannot start workflows). One AgentRun is recorded, with the
workflow run's id as its turn id.
"""

from __future__ import annotations

import asyncio
import uuid

from agents import ItemHelpers, RunConfig, Runner
from django.conf import settings

from .. import selectors
from ..aio import db_call, db_call_parallel
from ..domain.enums import ModelProvider, RunStatus
from ..domain.exceptions import ProviderNotConfigured, StepFailed
from ..domain.permissions import visible_context
from ..domain.team import AgentSpec, Team
from ..model_choice import ModelChoice, resolve
from .context import TurnContext
from .recorder import RunRecorder
from .team import context_block, sdk_agent
from .tools import tool_not_found


async def run_step(
    *,
    agent_slug: str,
    instruction: str,
    conversation_id: uuid.UUID,
    run_id: uuid.UUID,
    timeout: float,
) -> str:
    """The agent's answer; raises StepFailed (its message says why) when there is none."""
    team = await db_call(selectors.team_snapshot)
    spec = team.get(agent_slug)
    if spec is None or not spec.enabled:
        raise StepFailed(f"The agent {agent_slug!r} is not available.")
    try:
        choice = resolve(spec)
    except ProviderNotConfigured as exc:
        raise StepFailed(str(exc)) from exc
    recorder = RunRecorder(
        team=team,
        choices={spec.slug: choice},
        conversation_id=conversation_id,
        turn_id=run_id,
        breaker=False,  # steps have their own retries and fallbacks
    )
    context = TurnContext(conversation_id, run_id, team, agent_slug=spec.slug)
    agent = await _step_agent(spec, choice, team, conversation_id)
    await recorder.open(spec.slug)
    status, error = RunStatus.ERROR, ""
    try:
        async with asyncio.timeout(timeout):
            result = await Runner.run(
                agent,
                input=instruction,
                context=context,
                max_turns=settings.SUPERORCH_MAX_MODEL_CALLS,
                hooks=recorder,
                run_config=RunConfig(
                    tracing_disabled=True,
                    workflow_name="superorch step",
                    tool_not_found_behavior="return_error_to_model",
                    tool_error_formatter=tool_not_found,
                ),
            )
        text = ItemHelpers.text_message_outputs(result.new_items).strip()
        if not text:
            raise StepFailed(f"{spec.name} gave an empty answer.")
        status = RunStatus.OK
        return text
    except TimeoutError as exc:
        error = f"step exceeded {timeout:g}s"
        raise StepFailed(f"{spec.name} did not answer within {timeout:g} seconds.") from exc
    except StepFailed as exc:
        error = str(exc)
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise StepFailed(f"{spec.name} failed: {type(exc).__name__}.") from exc
    finally:
        await recorder.close(status, error)


async def _step_agent(spec: AgentSpec, choice: ModelChoice, team: Team, conversation_id):
    shared = await db_call(selectors.context_visible, conversation_id=conversation_id)
    router = None  # only the offline model routes
    if choice.provider == ModelProvider.LOCAL:
        router = await db_call_parallel(selectors.router_for, team=team)
    return sdk_agent(
        spec,
        choice,
        team=team,
        router=router,
        workflows=False,
        block=context_block({}, visible_context(shared, spec)),
        guarded=False,
    )
