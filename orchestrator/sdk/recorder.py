"""The run recorder: one AgentRun per agent that took part in an attempt, and its breaker.

As the SDK's RunHooks it hears when each agent starts and the usage of each model
call; hooks run in the SDK's run task, ahead of the events the stream hands the
attempt, so figures are kept by agent name and taken when that agent's run closes.
The attempt opens a run when an agent takes over and closes it when the agent hands
off or the attempt ends; closing feeds the agent's circuit breaker with what its
model did.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from agents import RunHooks
from django.utils import timezone

from .. import services
from ..aio import db_call
from ..domain.enums import ErrorKind, RunStatus
from ..domain.team import Team
from ..model_choice import ModelChoice
from .context import TurnContext


@dataclass
class _OpenRun:
    run_id: int
    slug: str
    name: str
    started: float  # time.monotonic()
    first_token: float | None = None


class RunRecorder(RunHooks[TurnContext]):
    def __init__(
        self,
        *,
        team: Team,
        choices: dict[str, ModelChoice],
        conversation_id: uuid.UUID,
        turn_id: uuid.UUID,
        breaker: bool = True,
    ) -> None:
        self.team, self.choices, self.breaker = team, choices, breaker
        self.conversation_id, self.turn_id = conversation_id, turn_id
        self.started: dict[str, float] = {}
        self.usage: dict[str, list[int]] = {}  # agent name -> [requests, input, output]
        self.current: _OpenRun | None = None

    # --- RunHooks --------------------------------------------------------------------

    async def on_agent_start(self, context, agent) -> None:
        self.started.setdefault(agent.name, time.monotonic())
        spec = self.team.by_name(agent.name)
        if spec is not None and isinstance(context.context, TurnContext):
            context.context.agent_slug = spec.slug  # who a made-up tool call is charged to

    async def on_llm_end(self, context, agent, response) -> None:
        usage = self.usage.setdefault(agent.name, [0, 0, 0])
        if response.usage is not None:
            usage[0] += response.usage.requests or 1
            usage[1] += response.usage.input_tokens or 0
            usage[2] += response.usage.output_tokens or 0

    # --- what the attempt tells it ----------------------------------------------------

    async def open(self, slug: str) -> None:
        spec, choice = self.team.agents[slug], self.choices[slug]
        started = self.started.pop(spec.name, time.monotonic())
        run_id = await db_call(
            services.agent_run_start,
            agent_id=spec.id,
            agent_slug=slug,
            conversation_id=self.conversation_id,
            turn_id=self.turn_id,
            provider=choice.provider,
            model_name=choice.model_name,
            started_at=timezone.now() - timedelta(seconds=time.monotonic() - started),
        )
        self.current = _OpenRun(run_id=run_id, slug=slug, name=spec.name, started=started)

    def first_token(self) -> None:
        if self.current is not None and self.current.first_token is None:
            self.current.first_token = time.monotonic()

    async def close(
        self, status: RunStatus, error: str = "", kind: ErrorKind | None = None
    ) -> None:
        record, self.current = self.current, None
        if record is None:
            return
        self.started.pop(record.name, None)
        requests, input_tokens, output_tokens = self.usage.pop(record.name, [0, 0, 0])
        now = time.monotonic()
        ttft = record.first_token
        await db_call(
            services.agent_run_finish,
            run_id=record.run_id,
            agent_slug=record.slug,
            status=status,
            duration_ms=round((now - record.started) * 1000),
            ttft_ms=round((ttft - record.started) * 1000) if ttft else None,
            requests=requests,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            error=error,
            error_kind=kind or "",
        )
        # The breaker hears about the model: a model failure, or a model that answered.
        if not self.breaker:
            return
        if kind is not None and kind != ErrorKind.OTHER:
            await db_call(
                services.agent_health_record, agent_slug=record.slug, ok=False, error=error
            )
        elif status in (RunStatus.OK, RunStatus.HANDOFF) and requests:
            await db_call(services.agent_health_record, agent_slug=record.slug, ok=True)
