"""One attempt at a turn: one run of the SDK from a starting agent, handoffs followed.

The SDK's stream events are mapped to our events (domain.events), one method per
event kind; the recorder keeps the AgentRun records. An attempt ends `ok`,
`cancelled` or `error`; an error says whether it was the model's (`kind`) and whether
the user already saw part of the answer (`streamed`), which is what the recovery
policy needs to decide what happens next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from agents import (
    AgentUpdatedStreamEvent,
    InputGuardrailTripwireTriggered,
    ItemHelpers,
    MaxTurnsExceeded,
    RawResponsesStreamEvent,
    RunConfig,
    RunItemStreamEvent,
    Runner,
    RunState,
)
from agents.result import RunResultStreaming
from django.conf import settings
from django.utils.translation import gettext

from ..actions import parse_arguments, refusal_output
from ..aio import db_call
from ..approvals import PausedCall, Resume, approval_open
from ..domain.enums import (
    AgentRole,
    ChangeReason,
    ErrorKind,
    GuardrailName,
    RunStatus,
    TurnErrorCode,
    TurnResult,
)
from ..domain.events import (
    INTERNAL_ERROR,
    MODEL_UNAVAILABLE,
    TOO_SLOW,
    AgentChanged,
    AgentRef,
    ApprovalRequested,
    Emit,
    MessageDelta,
    MessageDone,
    ToolFinished,
    ToolStarted,
    TurnRequest,
)
from ..domain.guardrails import WITHHELD_REPLY, ReplyScreen, ScreenRules, Verdict
from ..domain.mcp import SEPARATOR
from ..domain.team import AgentSpec, Team
from ..domain.tool_names import tool_label
from .context import TurnContext
from .errors import call_id, model_error_kind, tool_name, tool_ok
from .inputs import accepts_images, model_input
from .recorder import RunRecorder
from .team import BuiltTeam
from .tools import tool_not_found

logger = logging.getLogger(__name__)
CANNOT_RESUME = (
    "Sorry, this request can no longer be completed (our setup changed meanwhile). "
    "Nothing was done; please ask again."
)


@dataclass
class TurnState:
    """What the attempts of one turn share."""

    team: Team
    built: BuiltTeam
    request: TurnRequest
    emit: Emit
    cancel: asyncio.Event
    deadline: float  # loop time: one deadline for all attempts
    previous: AgentRef | None  # who the user last saw answering
    silence_left: float = float("inf")  # seconds of model silence the attempts may still spend
    final_slug: str | None = None
    usage: dict[str, int] = field(
        default_factory=lambda: {"requests": 0, "input_tokens": 0, "output_tokens": 0}
    )
    claimed: set[int] = field(default_factory=set)  # workflow answers the turn took
    screen: ScreenRules | None = None  # what replies must not contain (None: not screened)

    def ref(self, slug: str) -> AgentRef:
        spec = self.team.agents[slug]
        return AgentRef(spec.slug, spec.name)


@dataclass(frozen=True)
class AttemptResult:
    status: TurnResult
    code: TurnErrorCode | str = ""
    message: str = ""
    detail: str = ""
    kind: ErrorKind | None = None  # a model failure's kind
    streamed: bool = False  # the user saw output: retrying would repeat it
    failed_slug: str = ""
    guardrail: Verdict | None = None  # the guardrail that stopped it (status blocked)

    @property
    def recoverable(self) -> bool:
        """A model failure before anything reached the user: another try may answer."""
        return self.status == TurnResult.ERROR and self.kind is not None and not self.streamed


class ReplyWithheld(Exception):
    """A reply would have leaked (the output screen): it is replaced and the run ends."""

    def __init__(self, message_id: uuid.UUID, kind: str) -> None:
        super().__init__(f"a reply was withheld: {kind}")
        self.message_id, self.kind = message_id, kind


class AgentSilent(Exception):
    def __init__(self, agent: AgentSpec, limit: float) -> None:
        super().__init__(f"{agent.name}'s model said nothing for {limit:g}s")


class Attempt:
    def __init__(
        self,
        turn: TurnState,
        start_slug: str,
        reason: ChangeReason,
        resume: Resume | None = None,
    ) -> None:
        self.turn, self.start_slug, self.first_reason = turn, start_slug, reason
        self.resume = resume  # a run paused for an approval, continued
        request = turn.request
        self.recorder = RunRecorder(
            team=turn.team,
            choices=turn.built.choices,
            conversation_id=request.conversation_id,
            turn_id=request.turn_id,
        )
        self.current_slug: str | None = None
        self.message_ids: dict[str, uuid.UUID] = {}  # the model's item id -> our message id
        self.partial: dict[uuid.UUID, list[str]] = {}  # streamed text not yet done
        self.screens: dict[uuid.UUID, ReplyScreen] = {}  # per message, when screened
        self.streamed = False
        self.tools_running: set[str] = set()
        self._events: Any = None  # the SDK's event stream, once consumed
        self._handlers: dict[type, Callable[[Any], Awaitable[None]]] = {
            AgentUpdatedStreamEvent: self.on_agent_updated,
            RawResponsesStreamEvent: self.on_raw_response,
            RunItemStreamEvent: self.on_run_item,
        }

    @property
    def speaker(self) -> AgentSpec:
        return self.turn.team.agents[self.current_slug or self.start_slug]

    async def run(self) -> AttemptResult:
        turn = self.turn
        start = turn.built.agents[self.start_slug]
        context = TurnContext(
            turn.request.conversation_id, turn.request.turn_id, turn.team, turn.emit, turn.claimed
        )
        images = accepts_images(turn.built.choices[self.start_slug].provider)
        run_input: Any = await model_input(turn.request, images=images)
        if self.resume is not None:
            try:
                run_input = await paused_run(start, self.resume, context)
            except Exception as exc:  # the registry changed shape, or the state is unreadable
                logger.warning("turn %s: cannot resume: %s", turn.request.turn_id, exc)
                return AttemptResult(
                    TurnResult.ERROR, TurnErrorCode.INTERNAL, CANNOT_RESUME, f"resume: {exc}"
                )
        result = Runner.run_streamed(
            start,
            input=run_input,
            context=None if self.resume is not None else context,
            max_turns=settings.SUPERORCH_MAX_MODEL_CALLS,
            hooks=self.recorder,
            run_config=RunConfig(
                tracing_disabled=True,
                workflow_name="superorch turn",
                # A tool the agent was not given is refused and recorded, not a crash.
                tool_not_found_behavior="return_error_to_model",
                tool_error_formatter=tool_not_found,
            ),
        )
        watcher = asyncio.create_task(self._cancel_on_request(result))
        outcome = AttemptResult(TurnResult.OK)
        try:
            await self._consume(result)
            if result.interruptions and not turn.cancel.is_set():
                outcome = await self._pause(result)
        except Exception as exc:  # model, network and tool failures end the attempt cleanly
            outcome = self._failure(exc)
        finally:
            watcher.cancel()
            outcome = await self._end(result, outcome)
        return outcome

    async def _pause(self, result: RunResultStreaming) -> AttemptResult:
        """The run stopped before a call that needs approval: keep it, ask, end paused.
        (Several at once are asked one by one: the resumed run stops at the next.)"""
        turn, item = self.turn, result.interruptions[0]
        raw = item.raw_item
        for running in sorted(self.tools_running):  # waiting now, not working: no spinner
            await turn.emit(ToolFinished(running, True))
        self.tools_running.clear()
        text = raw.get("arguments") if isinstance(raw, dict) else getattr(raw, "arguments", "")
        arguments, _ = parse_arguments(text or "{}")
        state = result.to_state().to_string(context_serializer=_context_for_state)
        slug = turn.built.slug_by_name.get(item.agent.name, self.current_slug or self.start_slug)
        request = turn.request
        approval = await db_call(
            approval_open,
            paused=PausedCall(
                conversation_id=request.conversation_id,
                turn_id=request.turn_id,
                tool=item.tool_name or tool_name(raw),
                agent_slug=slug,
                start_agent=self.start_slug,
                tool_call_id=call_id(raw),
                arguments=arguments or {},
                run_state=state,
            ),
        )
        await turn.emit(
            ApprovalRequested(
                approval_id=approval.uuid,
                agent=slug,
                action=approval.tool,
                summary=approval.summary,
                by=approval.by,
                expires=approval.expires_at.isoformat(),
                arguments=approval.arguments,
            )
        )
        return AttemptResult(TurnResult.PAUSED, detail=f"waiting for approval {approval.uuid}")

    async def _cancel_on_request(self, result: RunResultStreaming) -> None:
        await self.turn.cancel.wait()
        result.cancel()

    async def _consume(self, result: RunResultStreaming) -> None:
        self._events = events = result.stream_events().__aiter__()
        # The agent's own limit on model silence (none while its tools work): one timer,
        # moved before each event, cheaper than a wait_for (a task) per streamed event.
        silence, clock = asyncio.timeout(None), asyncio.get_running_loop().time
        limit: float | None = None
        async with asyncio.timeout_at(self.turn.deadline):
            try:
                async with silence:
                    while True:
                        limit = self._silence_limit()
                        silence.reschedule(clock() + limit if limit is not None else None)
                        try:
                            event = await events.__anext__()
                        except StopAsyncIteration:
                            return
                        silence.reschedule(None)
                        handler = self._handlers.get(type(event))
                        if handler is not None:
                            await handler(event)
            except TimeoutError:
                if not silence.expired():
                    raise
                self.turn.silence_left = max(self.turn.silence_left - (limit or 0), 0.0)
                raise AgentSilent(self.speaker, limit or 0) from None

    def _silence_limit(self) -> float | None:
        """How long the model may stay silent now: the speaker's own limit, within what is
        left of the turn's silence budget (None while tools work: they have their own)."""
        if self.tools_running:
            return None
        own = self.speaker.timeout or float("inf")
        limit = min(own, self.turn.silence_left)
        return None if limit == float("inf") else limit

    def _failure(self, exc: Exception) -> AttemptResult:
        error = TurnResult.ERROR
        unavailable = TurnErrorCode.MODEL_UNAVAILABLE
        if isinstance(exc, InputGuardrailTripwireTriggered | ReplyWithheld):
            return self._blocked(exc)
        if isinstance(exc, TimeoutError):
            # The model is to blame only if it, not a tool, was being waited for.
            kind = None if self.tools_running else ErrorKind.TIMEOUT
            detail = f"turn exceeded {settings.SUPERORCH_TURN_TIMEOUT}s"
            return AttemptResult(error, unavailable, TOO_SLOW, detail, kind)
        if isinstance(exc, AgentSilent):
            return AttemptResult(error, unavailable, MODEL_UNAVAILABLE, str(exc), ErrorKind.TIMEOUT)
        if isinstance(exc, MaxTurnsExceeded):
            detail = f"max model calls exceeded: {exc}"
            return AttemptResult(error, TurnErrorCode.INTERNAL, INTERNAL_ERROR, detail)
        request = self.turn.request
        logger.warning("turn %s: %s: %s", request.turn_id, type(exc).__name__, exc)
        detail = f"{type(exc).__name__}: {exc}"
        kind = model_error_kind(exc)
        if kind is not None:
            return AttemptResult(error, unavailable, MODEL_UNAVAILABLE, detail, kind)
        logger.exception("turn %s failed", request.turn_id, exc_info=exc)
        return AttemptResult(error, TurnErrorCode.INTERNAL, INTERNAL_ERROR, detail)

    def _blocked(self, exc: InputGuardrailTripwireTriggered | ReplyWithheld) -> AttemptResult:
        """A guardrail stopped the run: the model's input check, or the output screen
        (whose message is replaced by plain words when the attempt ends)."""
        if isinstance(exc, ReplyWithheld):
            self.partial[exc.message_id] = [gettext(WITHHELD_REPLY)]
            verdict = Verdict(True, GuardrailName.OUTPUT, exc.kind, 1.0)
        else:
            info = exc.guardrail_result.output.output_info or {}
            verdict = Verdict(
                True, GuardrailName.INPUT_LLM, info.get("kind", ""), 1.0,
                detail=info.get("answer", ""),
            )  # fmt: skip
        logger.warning(
            "turn %s: %s guardrail (%s)", self.turn.request.turn_id, verdict.guardrail, verdict.kind
        )
        return AttemptResult(
            TurnResult.BLOCKED,
            detail=f"blocked by the {verdict.guardrail} guardrail",
            guardrail=verdict,
        )

    async def _end(self, result: RunResultStreaming, outcome: AttemptResult) -> AttemptResult:
        """Stop what still runs, keep what the user saw, close the run record."""
        turn = self.turn
        if outcome.status not in (TurnResult.OK, TurnResult.PAUSED):  # no more model or tool calls
            result.cancel()
            if self._events is not None:
                with contextlib.suppress(Exception):
                    await self._events.aclose()
        status = outcome.status
        if turn.cancel.is_set() and status == TurnResult.OK:
            status = TurnResult.CANCELLED
        # A message cut short by cancel or failure keeps what the user already saw.
        speaker = turn.ref(self.current_slug or self.start_slug)
        for message_id, chunks in self.partial.items():
            await turn.emit(MessageDone(message_id, speaker, "".join(chunks)))
        self.partial.clear()
        # A run a guardrail stopped is recorded as cancelled (its detail says by which); a
        # paused one as ok (it did its part: the resumed turn records the rest).
        run_status = {TurnResult.BLOCKED: RunStatus.CANCELLED, TurnResult.PAUSED: RunStatus.OK}.get(
            status
        ) or RunStatus(status)
        await self.recorder.close(run_status, outcome.detail, outcome.kind)
        usage = result.context_wrapper.usage
        turn.usage["requests"] += usage.requests
        turn.usage["input_tokens"] += usage.input_tokens
        turn.usage["output_tokens"] += usage.output_tokens
        if self.current_slug:
            turn.final_slug = self.current_slug
        return AttemptResult(
            status, outcome.code, outcome.message, outcome.detail, outcome.kind,
            self.streamed, self.current_slug or self.start_slug, outcome.guardrail,
        )  # fmt: skip

    # --- one method per SDK stream event ---------------------------------------------

    async def on_agent_updated(self, event: AgentUpdatedStreamEvent) -> None:
        turn = self.turn
        slug = turn.built.slug_by_name.get(event.new_agent.name)
        if slug is None or slug == self.current_slug:
            return
        if self.current_slug is not None:
            await self.recorder.close(RunStatus.HANDOFF)
        await self.recorder.open(slug)
        structlog.contextvars.bind_contextvars(agent=slug)
        new = turn.ref(slug)
        if turn.previous is None or turn.previous.slug != slug:
            reason = self.first_reason
            if self.current_slug is not None:
                fallback = turn.team.agents[slug].role == AgentRole.FALLBACK
                reason = ChangeReason.FALLBACK if fallback else ChangeReason.HANDOFF
            await turn.emit(AgentChanged(turn.previous, new, reason))
        turn.previous, self.current_slug = new, slug

    async def on_raw_response(self, event: RawResponsesStreamEvent) -> None:
        data = event.data
        if getattr(data, "type", "") != "response.output_text.delta" or not data.delta:
            return
        self.recorder.first_token()
        key = data.item_id or "-"
        message_id = self.message_ids.get(key)
        if message_id is None:  # not setdefault: a uuid4 per delta costs a getrandom call
            message_id = self.message_ids[key] = uuid.uuid4()
        text = self._screened(message_id, data.delta)
        if not text:  # held back until it is clear it leaks nothing
            return
        self.partial.setdefault(message_id, []).append(text)
        self.streamed = True
        speaker = self.turn.ref(self.current_slug or self.start_slug)
        await self.turn.emit(MessageDelta(message_id, speaker, text))

    def _screen(self, message_id: uuid.UUID) -> ReplyScreen | None:
        if self.turn.screen is None:
            return None
        if message_id not in self.screens:
            self.screens[message_id] = ReplyScreen(self.turn.screen)
        return self.screens[message_id]

    def _screened(self, message_id: uuid.UUID, delta: str) -> str:
        """What of a delta may reach the user now (the output guardrail)."""
        screen = self._screen(message_id)
        if screen is None:
            return delta
        text = screen.feed(delta)
        if screen.leak:
            raise ReplyWithheld(message_id, screen.leak)
        return text

    async def on_run_item(self, event: RunItemStreamEvent) -> None:
        if event.name == "tool_called":
            await self._tool_called(event.item)
        elif event.name == "tool_output":
            await self._tool_output(event.item)
        elif event.name == "message_output_created":
            await self._message_created(event.item)

    async def _tool_called(self, item: Any) -> None:
        raw = item.raw_item
        call = call_id(raw)
        self.tools_running.add(call)
        agent = self.turn.built.slug_by_name.get(item.agent.name, self.current_slug or "")
        name = tool_name(raw)
        mcp = SEPARATOR in name  # an MCP server's tool (<server>__<tool>)
        label = tool_label(name, action=name in self.turn.team.actions or mcp)
        await self.turn.emit(ToolStarted(agent, name, call, label))

    async def _tool_output(self, item: Any) -> None:
        call = call_id(item.raw_item)
        if call not in self.tools_running:
            return  # an approved call of the paused turn (its card said what it does)
        self.tools_running.discard(call)
        await self.turn.emit(ToolFinished(call, tool_ok(item.output)))

    async def _message_created(self, item: Any) -> None:
        self.streamed = True
        text = ItemHelpers.text_message_output(item)
        slug = self.turn.built.slug_by_name.get(item.agent.name, self.current_slug)
        speaker = self.turn.ref(slug or self.start_slug)
        message_id = self.message_ids.pop(getattr(item.raw_item, "id", None) or "-", None)
        message_id = message_id or uuid.uuid4()
        screen = self._screen(message_id)
        if screen is not None:
            rest = screen.finish(text)
        else:
            rest = "" if message_id in self.partial else text
        if screen is not None and screen.leak:
            raise ReplyWithheld(message_id, screen.leak)
        if rest:  # what was held back (or the whole reply, when it did not stream)
            await self.turn.emit(MessageDelta(message_id, speaker, rest))
        self.partial.pop(message_id, None)
        if text:
            await self.turn.emit(MessageDone(message_id, speaker, text))


def _context_for_state(context: Any) -> dict[str, Any]:
    """What of the turn's context the stored run keeps: its ids (the resumed turn brings
    the rest: the team as it is then, its own event callback)."""
    return {
        "conversation_id": str(getattr(context, "conversation_id", "")),
        "turn_id": str(getattr(context, "turn_id", "")),
    }


async def paused_run(start: Any, resume: Resume, context: TurnContext) -> RunState[Any]:
    """The stored run, rebuilt on the team as it is now, with the answer applied."""
    if resume.grant is not None:
        context.grants[resume.tool_call_id] = resume.grant
    state = await RunState.from_string(start, resume.run_state, context_override=context)
    for item in state.get_interruptions():
        if call_id(item.raw_item) != resume.tool_call_id:
            continue
        if resume.grant is not None:
            state.approve(item)
        else:
            state.reject(item, rejection_message=refusal_output(resume.refusal))
    return state
