"""Circuit breakers for agents' models: pure transitions (no ORM), used by services.

closed ── N failures in a row ──> open ── cooldown passes ──> half_open
  ^                                 ^                            │
  └────────── a success ────────────┴──── a failure ─────────────┘

While open, routing skips the agent (for its alternative, else the fallback). Once
the cooldown has passed the breaker reads as half-open: the next turn is let
through as a probe; its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .enums import BreakerState

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


@dataclass(frozen=True)
class Breaker:
    state: BreakerState = CLOSED
    failures: int = 0
    opened_at: datetime | None = None


def effective(breaker: Breaker, *, now: datetime, cooldown: float) -> BreakerState:
    """The state as routing sees it now (an open breaker turns half-open by itself)."""
    opened = breaker.opened_at
    if breaker.state == OPEN and opened and (now - opened).total_seconds() >= cooldown:
        return HALF_OPEN
    return BreakerState(breaker.state)


def record(
    breaker: Breaker, *, ok: bool, now: datetime, threshold: int, cooldown: float
) -> Breaker:
    """The breaker after one model call's result."""
    if ok:
        return Breaker(CLOSED, 0, None)
    failures = breaker.failures + 1
    state = effective(breaker, now=now, cooldown=cooldown)
    if state == HALF_OPEN or (state == CLOSED and failures >= threshold):
        return Breaker(OPEN, failures, now)  # (re)opened: the cooldown starts again
    return Breaker(breaker.state, failures, breaker.opened_at)
