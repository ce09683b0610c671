"""One turn: run the orchestrator on the conversation so far, record what happens, and
broadcast each event to every socket of the conversation as a protocol frame.

`TurnRunner.run()` announces the turn, hands `emit` to `orchestrator.runtime.run_turn`
(with a cancel event fed by the turn-control group, and a heartbeat that keeps the
conversation's lease), then records the outcome and ends with `turn.done`. Each runtime
event kind has one small method, found by the event's type in `_HANDLERS`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import structlog
from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from orchestrator import alerts, metrics, rollups, runtime
from orchestrator.domain.off_topic import DEFAULT_REPLY as DEFAULT_OFF_TOPIC_REPLY

from .. import approvals, people, protocol, selectors, services
from ..broadcast import DeltaStream, TurnCancelListener, broadcast
from ..enums import EscalationSource, OffTopic
from ..models import Turn, TurnEvent, TurnStatus

logger = logging.getLogger(__name__)
db = database_sync_to_async

DELTA_INTERVAL = 0.04  # seconds: at most 25 message.delta frames a second per turn
# What an agent produces: a socket drops it once a person owns the conversation.
AGENT_OUTPUT = (
    protocol.MessageDelta,
    protocol.MessageDone,
    protocol.AgentChanged,
    protocol.ToolStarted,
    protocol.ToolFinished,
    protocol.WorkflowProgress,
    protocol.TurnProgress,
    protocol.ApprovalRequest,
)
STILL_WORKING = _("Still working on it. This is taking a little longer than usual.")

# What run_turn hands to `emit` (a local alias: the runtime's own union is being renamed).
RuntimeEvent = (
    runtime.RouteDecided
    | runtime.AgentChanged
    | runtime.ToolStarted
    | runtime.ToolFinished
    | runtime.MessageDelta
    | runtime.MessageDone
    | runtime.WorkflowProgress
    | runtime.ApprovalRequested
)


def _agent(ref: runtime.AgentRef | None) -> protocol.AgentPayload | None:
    return protocol.AgentPayload(slug=ref.slug, name=ref.name) if ref else None


class TurnRunner:
    """Runs one turn (the conversation's lease is held by the caller)."""

    def __init__(self, turn: Turn, conversation_uuid: uuid.UUID) -> None:
        self.turn, self.conversation_uuid = turn, conversation_uuid
        self.key = str(turn.uuid)
        self.deltas = DeltaStream(conversation_uuid, self.key, DELTA_INTERVAL, send=self._send)
        self.seq = 0  # the turn's frames, numbered (`seq`: a client sees a gap and resyncs)
        self._sending = asyncio.Lock()
        self.started = self.last_output = asyncio.get_running_loop().time()
        self.takes_over: list[uuid.UUID] = []  # partial replies of earlier failed turns
        self.message_ids: dict[uuid.UUID, uuid.UUID] = {}  # the runtime's id -> the one sent
        self.replacing: set[uuid.UUID] = set()  # ids of partial replies this turn replaces
        self.cancel = asyncio.Event()  # set by turn.cancel (the user's, or a staff takeover)
        self.dropped = False  # a reply was dropped: staff took over before it was done

    async def run(self) -> None:
        # Every log line of this turn carries its ids (structlog contextvars; one task per turn).
        with structlog.contextvars.bound_contextvars(
            conversation=str(self.conversation_uuid), turn=self.key
        ):
            locale = await db(selectors.conversation_locale)(
                conversation_id=self.turn.conversation_id
            )
            # The conversation's language (chat/i18n.py) for every sentence the turn
            # produces: the offline model's, the errors', the tools' labels. A context
            # variable: it holds for this task and the threads it calls, no other turn.
            with translation.override(locale):
                await self._run()

    async def _run(self) -> None:
        request = await self._start()
        outcome = await self._answer(request)
        if self.dropped and outcome.status == TurnStatus.OK:
            # The takeover stopped it, however late the turn heard of the cancel: its
            # message waits for the person (services.turn_finish), not marked answered.
            outcome = dataclasses.replace(outcome, status=TurnStatus.CANCELLED.value)
        await self._finish(outcome)

    def _start_reads(self) -> tuple:
        """What the turn starts from, in one trip to the database thread."""
        turn = self.turn
        return (
            selectors.conversation_get(conversation_id=turn.conversation_id),
            selectors.turn_history(turn=turn),
            *selectors.turn_reply(turn=turn),  # reply_to, files
            selectors.turn_partial_replies(turn=turn),
            approvals.turn_resume(turn=turn),  # an approval was answered
        )

    async def _start(self) -> runtime.TurnRequest:
        turn = self.turn
        conversation, history, reply_to, files, self.takes_over, resume = await db(
            self._start_reads
        )()
        await self._send(protocol.TurnStarted(turn=self.key, reply_to=reply_to))
        return runtime.TurnRequest(
            conversation_id=self.conversation_uuid,
            turn_id=turn.uuid,
            history=history,
            active_agent=conversation.active_agent or None,
            page_context=conversation.page_context or {},
            staff_note=conversation.handback_note,
            people=True,
            user_email=conversation.user_email or conversation.contact_email,
            off_topic=runtime.OffTopicRule.for_site(
                decline=conversation.site.off_topic == OffTopic.DECLINE,
                reply=conversation.site.off_topic_reply
                or gettext(DEFAULT_OFF_TOPIC_REPLY).format(
                    site=conversation.site.name.strip() or gettext("us")
                ),
                site_name=conversation.site.name,
            ),
            resume=resume,
            attachments=files,
        )

    async def _answer(self, request: runtime.TurnRequest) -> runtime.TurnOutcome:
        cancel = self.cancel
        listener = TurnCancelListener(self.conversation_uuid, cancel)
        listener.start()
        await listener.listening()
        # A takeover committed before the listener heard: its cancel was sent to nobody.
        if not await db(people.agents_may_answer)(conversation_id=self.turn.conversation_id):
            cancel.set()
        heartbeat = asyncio.create_task(_heartbeat(self.turn.conversation_id))
        still = asyncio.create_task(self._still_working(settings.SUPERORCH_STILL_WORKING_AFTER))
        try:
            return await runtime.run_turn(request, self.emit, cancel)
        except Exception as exc:  # never leave a turn open: record it and tell the user
            logger.exception("turn %s crashed", self.key)
            return runtime.TurnOutcome(
                TurnStatus.ERROR.value,
                None,
                {},
                protocol.ErrorCode.INTERNAL.value,
                runtime.INTERNAL_ERROR,
                f"{type(exc).__name__}: {exc}",
            )
        finally:
            await listener.stop()
            heartbeat.cancel()
            still.cancel()
            await self.deltas.close()

    async def _finish(self, outcome: runtime.TurnOutcome) -> None:
        await db(services.turn_finish)(
            turn=self.turn,
            status=outcome.status,
            agent_slug=outcome.final_agent.slug if outcome.final_agent else "",
            usage=outcome.usage,
            error_code=outcome.error_code,
            error=outcome.error_detail,
            guardrail=outcome.guardrail,
            guardrail_ms=outcome.guardrail_ms,
        )
        if outcome.status == TurnStatus.ERROR:
            await self._send(_error_frame(outcome, self.key))
            # No model could answer, turn after turn: a person is asked for.
            await db(people.after_turn_error)(conversation_id=self.turn.conversation_id)
        metrics.TURNS.labels(outcome.status, outcome.error_code or "").inc()
        alerts.alerts_maybe_evaluate()  # at most every SUPERORCH_ALERT_INTERVAL, on a thread
        rollups.rollups_maybe_update()  # likewise, SUPERORCH_ROLLUP_INTERVAL
        usage = protocol.UsagePayload.from_counts(outcome.usage)
        await self._send(protocol.TurnDone(turn=self.key, status=outcome.status, usage=usage))

    async def _send(self, frame: protocol.ServerFrame) -> None:
        """Number the frame (`seq`) and broadcast it; one at a time, so they go in order.
        An agent's output is marked: the sockets drop it once a person owns the
        conversation (a cancelled turn's last words still reach them otherwise)."""
        output = isinstance(frame, AGENT_OUTPUT)
        async with self._sending:
            self.seq += 1
            self.last_output = asyncio.get_running_loop().time()
            numbered = frame.model_copy(update={"seq": self.seq})
            await broadcast(self.conversation_uuid, numbered, agent_output=output)

    async def _still_working(self, after: float) -> None:
        """`turn.progress` after `after` seconds without output, and again after each as
        long while the silence lasts (a hanging model, a long tool)."""
        if after <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            wait = self.last_output + after - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            elapsed = round(loop.time() - self.started, 1)
            frame = protocol.TurnProgress(
                turn=self.key, message=str(STILL_WORKING), elapsed=elapsed
            )
            # Shielded: the turn's end cancels this task, and a frame numbered but not sent
            # would be a gap in `seq` that makes every client resync.
            await asyncio.shield(self._send(frame))

    # --- runtime events ------------------------------------------------------------------

    async def emit(self, event: RuntimeEvent) -> None:
        self.last_output = asyncio.get_running_loop().time()
        handler = self._HANDLERS.get(type(event))
        if handler is None:
            logger.debug("turn event %s is not for the chat", type(event).__name__)
            return
        if handler is not TurnRunner._on_delta:
            await self.deltas.flush()  # every other frame comes after the text before it
        await handler(self, event)

    def _message_id(self, runtime_id: uuid.UUID) -> uuid.UUID:
        """The id a message of this turn is sent and stored under: the turn's first messages
        take over the partial replies earlier failed turns left for the same user message
        (the page replaces their bubbles by id), so a question keeps one reply."""
        if runtime_id not in self.message_ids:
            taken = self.takes_over.pop(0) if self.takes_over else runtime_id
            self.message_ids[runtime_id] = taken
            if taken != runtime_id:
                self.replacing.add(taken)
        return self.message_ids[runtime_id]

    async def _on_delta(self, event: runtime.MessageDelta) -> None:
        message_id = self._message_id(event.message_id)
        await self.deltas.add(message=str(message_id), agent=event.agent.slug, text=event.text)

    async def _on_route(self, event: runtime.RouteDecided) -> None:
        await db(services.turn_record_route)(turn=self.turn, decision=event.decision.as_dict())
        # The router read a request for a person (RoutingDecision.wants_person).
        if event.decision.wants_person:
            await db(self._person_asked_for)()

    def _person_asked_for(self) -> None:
        """The conversation waits for a person (the status frame tells the user what
        happens next), and no agent answers this message: it is answered by the request,
        so a hand-back does not route it to a person again."""
        conversation = selectors.conversation_get(conversation_id=self.turn.conversation_id)
        people.request_human(
            conversation=conversation,
            reason="The user asked for a person.",
            source=EscalationSource.WORDS,
        )
        services.message_answered(message_id=self.turn.reply_to_id)

    async def _on_message_done(self, event: runtime.MessageDone) -> None:
        if await db(people.person_owns)(conversation_id=self.turn.conversation_id):
            self.dropped = True  # staff took over: what the agent wrote is neither kept nor sent
            return
        message_uuid = self._message_id(event.message_id)
        message = await db(services.assistant_message_create)(
            turn=self.turn,
            message_uuid=message_uuid,
            agent_slug=event.agent.slug,
            agent_name=event.agent.name,
            text=event.text,
            replaces=message_uuid in self.replacing,
        )
        payload = protocol.MessagePayload.from_message(message)
        await self._send(protocol.MessageDone(turn=self.key, message=payload))

    async def _on_agent_changed(self, event: runtime.AgentChanged) -> None:
        frame = protocol.AgentChanged(
            turn=self.key,
            from_=_agent(event.previous),
            to=_agent(event.current),
            reason=event.reason,
        )
        await db(services.conversation_set_agent)(
            conversation_id=self.turn.conversation_id, agent_slug=event.current.slug
        )
        data = frame.model_dump(by_alias=True, include={"from_", "to", "reason"})
        await db(services.turn_event_record)(
            turn_id=self.turn.pk, kind=TurnEvent.Kind.AGENT, data=data
        )
        await self._send(frame)

    async def _on_tool_started(self, event: runtime.ToolStarted) -> None:
        await db(services.turn_event_record)(
            turn_id=self.turn.pk,
            kind=TurnEvent.Kind.TOOL,
            data={"agent": event.agent, "tool": event.tool, "call": event.call},
        )
        await self._send(
            protocol.ToolStarted(
                turn=self.key,
                agent=event.agent,
                tool=event.tool,
                call=event.call,
                label=gettext(event.label),
            )
        )

    async def _on_tool_finished(self, event: runtime.ToolFinished) -> None:
        await self._send(protocol.ToolFinished(turn=self.key, call=event.call, ok=event.ok))

    async def _on_workflow_progress(self, event: runtime.WorkflowProgress) -> None:
        workflow = protocol.WorkflowPayload(
            id=str(event.run_id), slug=event.workflow, name=event.name
        )
        await self._send(
            protocol.WorkflowProgress(
                turn=self.key,
                workflow=workflow,
                status=event.status,
                step=event.step,
                agent=event.agent,
                done=event.done,
                total=event.total,
            )
        )

    async def _on_approval(self, event: runtime.ApprovalRequested) -> None:
        """An action waits for a yes or no: the card on every page (and, for staff's, the
        inbox). The turn then ends paused."""
        await db(approvals.approval_asked)(
            turn_id=self.turn.pk, conversation_id=self.conversation_uuid, asked=event
        )
        await self._send(
            protocol.ApprovalRequest(
                turn=self.key,
                approval=str(event.approval_id),
                agent=event.agent,
                action=event.action,
                summary=event.summary,
                by=event.by,
                expires=event.expires,
            )
        )

    _HANDLERS: ClassVar[dict[type, Callable[[Any, Any], Awaitable[None]]]] = {
        runtime.ApprovalRequested: _on_approval,
        runtime.MessageDelta: _on_delta,
        runtime.RouteDecided: _on_route,
        runtime.MessageDone: _on_message_done,
        runtime.AgentChanged: _on_agent_changed,
        runtime.ToolStarted: _on_tool_started,
        runtime.ToolFinished: _on_tool_finished,
        runtime.WorkflowProgress: _on_workflow_progress,
    }


def _error_frame(outcome: runtime.TurnOutcome, turn_key: str) -> protocol.Error:
    """The error a failed turn reports (ref = turn id)."""
    return protocol.Error(
        code=protocol.ErrorCode.or_internal(outcome.error_code),
        message=gettext(outcome.error_message or runtime.INTERNAL_ERROR),
        retryable=True,
        ref=turn_key,
    )


async def _heartbeat(conversation_id: int) -> None:
    """Renew the conversation's lease while the turn runs: at a third of the lease, so two
    renewals may be late before another process may take the conversation over."""
    interval = max(settings.SUPERORCH_TURN_LEASE / 3, 0.05)
    while True:
        await asyncio.sleep(interval)
        await db(services.conversation_renew)(conversation_id=conversation_id)
