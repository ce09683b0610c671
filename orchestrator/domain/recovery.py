"""What next after a model failure: retry, the agent's alternative, the fallback, or give up.

Pure: the runtime asks after every failed attempt and does what it is told. A failure
is recoverable only while the user has seen nothing of the answer (a retry would
repeat it) and the turn was not cancelled. The same agent is retried first (with
exponential backoff) unless its circuit is open; then its alternative answers, then
the fallback agent; an agent tried once in a turn is not tried again there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .enums import BreakerState
from .team import Team


class Action(StrEnum):
    RETRY = "retry"
    ALTERNATIVE = "alternative"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class Next:
    action: Action
    agent: str
    delay: float = 0.0  # seconds to wait first


@dataclass
class Recovery:
    team: Team
    retries: int  # attempts left on the same agent
    backoff: float  # seconds before the next retry (doubled after each)
    tried: list[str] = field(default_factory=list)

    def after_failure(
        self, failed: str, *, circuits: Mapping[str, str], time_left: float
    ) -> Next | None:
        """The next attempt after `failed`'s model failed, or None to give up."""
        if time_left <= self.backoff:
            return None
        self.tried.append(failed)
        if self.retries > 0 and circuits.get(failed) != BreakerState.OPEN:
            self.retries -= 1
            delay, self.backoff = self.backoff, self.backoff * 2
            return Next(Action.RETRY, failed, delay)
        target = self._replacement(failed, circuits)
        if target is None:
            return None
        self.retries = 0  # a replacement gets one try
        spec = self.team.get(failed)
        alternative = spec is not None and spec.alternative == target
        return Next(Action.ALTERNATIVE if alternative else Action.FALLBACK, target)

    def _replacement(self, failed: str, circuits: Mapping[str, str]) -> str | None:
        spec = self.team.get(failed)
        fallback = self.team.fallback
        for option in (spec.alternative if spec else None, fallback.slug if fallback else None):
            if not option or option in self.tried:
                continue
            target = self.team.get(option)
            if target is None or not target.enabled or target.degraded:
                continue
            if circuits.get(option) == BreakerState.OPEN:
                continue
            return option
        return None
