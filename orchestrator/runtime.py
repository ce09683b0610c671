"""Running one chat turn: route it, then attempts and recovery, over the parts beside it.

`run_turn` takes the conversation's history, asks routing where the turn starts,
builds the team's SDK agents (orchestrator.sdk, the only door to the Agents SDK),
and runs attempts until one answers or the recovery policy (domain.recovery) gives
up. Everything that happens reaches the caller's `emit` callback as domain events;
the caller (the chat app) persists messages and broadcasts. This module never
imports the chat app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

from django.conf import settings
from django.utils.translation import gettext

from . import selectors, services, workflow_engine
from .aio import db_call, db_call_parallel
from .domain.enums import ChangeReason, GuardrailName, RoutePath, TurnErrorCode, TurnResult
from .domain.events import (
    INTERNAL_ERROR,
    MODEL_UNAVAILABLE,
    NO_AGENT,
    QUEUED_FOR_LATER,
    AgentChanged,
    AgentRef,
    ApprovalRequested,
    Emit,
    MessageDelta,
    MessageDone,
    RouteDecided,
    ToolFinished,
    ToolStarted,
    TurnOutcome,
    TurnRequest,
    TurnUpdate,
    WorkflowProgress,
)
from .domain.exceptions import NoAgentAvailable, ProviderNotConfigured
from .domain.guardrails import BLOCKED_REPLY, ScreenRules, Verdict
from .domain.off_topic import OffTopicRule, off_topic_verdict
from .domain.permissions import visible_context
from .domain.recovery import Action, Recovery
from .domain.routing_policy import RoutingDecision
from .domain.team import Team
from .sdk.attempt import CANNOT_RESUME, Attempt, AttemptResult, TurnState
from .sdk.team import build_team, context_block

__all__ = [
    "INTERNAL_ERROR",
    "AgentChanged",
    "AgentRef",
    "ApprovalRequested",
    "OffTopicRule",
    "Emit",
    "MessageDelta",
    "MessageDone",
    "RouteDecided",
    "ToolFinished",
    "ToolStarted",
    "TurnOutcome",
    "TurnRequest",
    "TurnUpdate",
    "WorkflowProgress",
    "run_turn",
]
logger = logging.getLogger(__name__)


async def run_turn(
    request: TurnRequest, emit: Emit, cancel: asyncio.Event | None = None
) -> TurnOutcome:
    cancel = cancel or asyncio.Event()
    team = await db_call(selectors.team_snapshot)
    if request.resume is not None:  # an approval was answered: the paused run goes on
        return await _answered(team, request, None, emit, cancel)
    try:
        # Routing is CPU work (and may train the router): never on the event loop.
        decision = await db_call_parallel(
            services.route_decide,
            text=request.user_text,
            active=request.active_agent,
            team=team,
            history=request.history,
        )
    except NoAgentAvailable as exc:
        return TurnOutcome.failed(TurnErrorCode.MODEL_UNAVAILABLE, NO_AGENT, str(exc))
    await emit(RouteDecided(decision))
    if decision.wants_person and request.people:
        return TurnOutcome.for_people()
    if cancel.is_set():  # before any agent ran (staff took over as the turn started)
        return TurnOutcome.cancelled()
    # The input guardrail, before any agent (and so any tool) runs.
    checked = await _input_guardrail(request)
    outcome = await _declined(team, request, decision, checked, emit)
    if outcome is None:
        outcome = await _answered(team, request, decision, emit, cancel)
    outcome.guardrail_ms = checked.ms if checked is not None else None
    return outcome


async def _declined(
    team: Team,
    request: TurnRequest,
    decision: RoutingDecision,
    checked: Verdict | None,
    emit: Emit,
) -> TurnOutcome | None:
    """The turn ended before any agent: a tripped input guardrail, or a site that declines
    what fits no agent. None when an agent is to answer."""
    if checked is not None and checked.blocked:
        await emit(MessageDone(uuid.uuid4(), _speaker(team, request), gettext(BLOCKED_REPLY)))
        return TurnOutcome.blocked(checked)
    if request.off_topic is None or (request.attachments and not request.user_text.strip()):
        return None  # a file without words fits no topic by its words: never declined
    fallback = team.fallback
    verdict = off_topic_verdict(
        text=request.user_text,
        agent=decision.agent,
        fallback=fallback.slug if fallback else None,
        wants_person=decision.wants_person,
    )
    if not verdict.blocked:
        return None
    speaker = AgentRef(fallback.slug, fallback.name)
    await emit(MessageDone(uuid.uuid4(), speaker, request.off_topic.reply))
    return TurnOutcome.blocked(verdict)


async def _answered(
    team: Team,
    request: TurnRequest,
    decision: RoutingDecision | None,
    emit: Emit,
    cancel: asyncio.Event,
) -> TurnOutcome:
    """The routed agent answers (with handoffs, fallbacks and retries in `_attempts`), or
    the run paused for an approval goes on (`decision` None: one attempt, and a failure
    leaves the message to be tried again, still as that run)."""
    shared = await db_call(selectors.context_visible, conversation_id=request.conversation_id)
    try:
        built = build_team(
            team,
            router=selectors.router_for(team),
            block=lambda spec: context_block(
                request.page_context, visible_context(shared, spec), request.staff_note
            ),
        )
    except ProviderNotConfigured as exc:
        logger.error("turn %s: %s", request.turn_id, exc)
        return TurnOutcome.failed(TurnErrorCode.MODEL_UNAVAILABLE, MODEL_UNAVAILABLE, str(exc))
    turn = TurnState(
        team=team,
        built=built,
        request=request,
        emit=emit,
        cancel=cancel,
        deadline=asyncio.get_running_loop().time() + settings.SUPERORCH_TURN_TIMEOUT,
        previous=_last_speaker(team, request.active_agent),
        silence_left=settings.SUPERORCH_TURN_SILENCE_BUDGET or float("inf"),
        screen=await _screen_rules(team, request, shared),
    )
    resume = request.resume
    if decision is None:
        if resume.start_agent not in team.agents:
            return TurnOutcome.failed(TurnErrorCode.INTERNAL, CANNOT_RESUME, "agent removed")
        attempt = Attempt(turn, resume.start_agent, ChangeReason.ROUTE, resume=resume)
        return await _outcome(turn, await attempt.run())
    first = ChangeReason.FALLBACK if decision.path == RoutePath.FALLBACK else ChangeReason.ROUTE
    return await _outcome(turn, await _attempts(turn, decision.agent, first))


async def _input_guardrail(request: TurnRequest) -> Verdict | None:
    """The offline classifier's verdict on the user's message (None when it is off). On a
    worker thread: it is CPU work (and a cold process trains the classifier first)."""
    if not settings.SUPERORCH_GUARDRAIL_INPUT or not request.user_text.strip():
        return None
    return await db_call_parallel(selectors.guardrail_check, text=request.user_text)


async def _screen_rules(team, request: TurnRequest, shared: dict) -> ScreenRules | None:
    """What this turn's replies must not contain (None when the output guardrail is off)."""
    if not settings.SUPERORCH_GUARDRAIL_OUTPUT:
        return None
    shown = [m["content"] for m in request.history]
    shown.append(json.dumps([request.page_context, shared], default=str))
    return await db_call(
        selectors.guardrail_screen_rules, team=team, shown=shown, email=request.user_email
    )


def _speaker(team, request: TurnRequest) -> AgentRef:
    """Who says that a guardrail stopped the turn: whoever the user saw last."""
    return _last_speaker(team, request.active_agent) or AgentRef("assistant", "Assistant")


def _last_speaker(team, active: str | None) -> AgentRef | None:
    """Who the user saw last: session.ready named the orchestrator when the conversation
    had no agent yet."""
    spec = team.get(active) or team.orchestrator
    return AgentRef(spec.slug, spec.name) if spec else None


async def _attempts(turn: TurnState, slug: str, reason: ChangeReason) -> AttemptResult:
    """Attempts until one answers, is cancelled, or recovery gives up: a model failure
    before anything reached the user is retried on the same agent (with backoff), then
    its alternative answers, then the fallback agent."""
    recovery = Recovery(
        turn.team,
        retries=settings.SUPERORCH_MODEL_RETRIES,
        backoff=settings.SUPERORCH_MODEL_RETRY_BACKOFF,
    )
    loop = asyncio.get_running_loop()
    while True:
        result = await Attempt(turn, slug, reason).run()
        if not result.recoverable or turn.cancel.is_set():
            return result
        circuits = await db_call(selectors.breaker_states)
        # The recovery policy gets the time left: of the turn, and of its silence budget
        # (so a hanging model does not chain full silence timeouts, one per attempt).
        time_left = min(turn.deadline - loop.time(), turn.silence_left)
        step = recovery.after_failure(result.failed_slug, circuits=circuits, time_left=time_left)
        if step is None:
            return result
        if step.action != Action.RETRY:
            logger.warning(
                "turn %s: %s failed (%s); trying %s",
                turn.request.turn_id, result.failed_slug, result.kind, step.agent,
            )  # fmt: skip
        await asyncio.sleep(step.delay)
        slug, reason = step.agent, ChangeReason.FALLBACK


async def _outcome(turn: TurnState, result: AttemptResult) -> TurnOutcome:
    if result.status != TurnResult.OK:
        # A workflow answer this turn took but could not pass on goes to the conversation.
        for run_id in turn.claimed:
            await db_call(workflow_engine.workflow_release_delivery, run_id=run_id)
    if result.status == TurnResult.PAUSED:
        return TurnOutcome.paused(
            turn.ref(turn.final_slug) if turn.final_slug else None, turn.usage
        )
    if result.status == TurnResult.BLOCKED and result.guardrail is not None:
        if result.guardrail.guardrail == GuardrailName.INPUT_LLM:  # nothing was said yet
            speaker = _speaker(turn.team, turn.request)
            await turn.emit(MessageDone(uuid.uuid4(), speaker, gettext(BLOCKED_REPLY)))
        outcome = TurnOutcome.blocked(result.guardrail, turn.usage)
        outcome.final_agent = turn.ref(turn.final_slug) if turn.final_slug else None
        return outcome
    unavailable = result.code == TurnErrorCode.MODEL_UNAVAILABLE
    return TurnOutcome(
        status=result.status,
        final_agent=turn.ref(turn.final_slug) if turn.final_slug else None,
        usage=turn.usage,
        error_code=result.code,
        error_message=QUEUED_FOR_LATER if unavailable else result.message,
        error_detail=result.detail,
    )
