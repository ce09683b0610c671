"""How many conversations a web process answers at once: an adaptive limit.

Every streamed token costs the process some CPU (the OpenAI client, the Agents SDK,
our frames). Past what one core can give, more turns at once only make every reply
stutter: a token waits behind everyone else's in the event loop. So turns wait for
a slot, round robin between clients (first come first served within one), and
the number of slots follows the event loop's
lag, measured every `PROBE` seconds while turns run (additive increase,
multiplicative decrease, as TCP does):

- lag above the target: the limit drops by a quarter (never below `FLOOR`); running
  turns finish, no new one starts until the lag is back;
- lag under half the target while turns wait: one more slot, up to the ceiling
  (SUPERORCH_MAX_ACTIVE_TURNS).

A slow model (tokens seconds apart) costs little CPU per turn, so many turns run at
once; a fast one fills the core sooner, and the queue absorbs the rest. Waiting turns
hold no lease: their messages are stored and acknowledged, and another server (or a
restart) may answer them.
"""

from __future__ import annotations

import asyncio
import collections
import time

from orchestrator import metrics

PROBE = 0.1  # seconds between two lag measurements
FLOOR = 4  # the fewest slots the limit falls to
START = 8  # the slots of a process that has not measured its lag yet


class FairQueue:
    """Waiting turns, round robin between clients: the next slot goes to the client
    after the one served last, so a client with a hundred waiting turns delays its
    own, not everyone else's (first come first served within one client)."""

    def __init__(self) -> None:
        self._queues: collections.OrderedDict[str, collections.deque[asyncio.Future[None]]]
        self._queues = collections.OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._queues)

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def push(self, client: str, future: asyncio.Future[None]) -> None:
        self._queues.setdefault(client, collections.deque()).append(future)

    def pop(self) -> asyncio.Future[None]:
        client, queue = next(iter(self._queues.items()))
        future = queue.popleft()
        if queue:
            self._queues.move_to_end(client)  # its next turn waits for the others'
        else:
            del self._queues[client]
        return future

    def discard(self, client: str, future: asyncio.Future[None]) -> None:
        queue = self._queues.get(client)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self._queues[client]


class TurnSlots:
    def __init__(self, ceiling: int, lag_target: float) -> None:
        self.ceiling, self.lag_target = ceiling, lag_target
        self.limit = min(ceiling, START)  # slow start: grow while the loop keeps up
        self.active = 0
        self._waiting = FairQueue()
        self._probe: asyncio.Task[None] | None = None

    async def acquire(self, client: str = "") -> None:
        """A slot for one of `client`'s turns (its address: chat.clients)."""
        self._watch()
        if self.active < self.limit and not self._waiting:
            self.active += 1
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.push(client, future)
        metrics.TURNS_WAITING.inc()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # it was given a slot as it was cancelled: pass it on
            raise
        finally:
            metrics.TURNS_WAITING.dec()
            self._waiting.discard(client, future)

    def release(self) -> None:
        self.active -= 1
        self._admit()

    def observe(self, lag: float) -> None:
        """One lag measurement (seconds the loop was late), from the probe or a test."""
        if lag > self.lag_target:
            self.limit = max(FLOOR, min(self.limit, self.active) * 3 // 4)
        elif lag < self.lag_target / 2 and self._waiting and self.active >= self.limit:
            self.limit = min(self.ceiling, self.limit + 1)
            self._admit()

    def _admit(self) -> None:
        while self._waiting and self.active < self.limit:
            future = self._waiting.pop()
            if not future.done():
                self.active += 1
                future.set_result(None)

    def _watch(self) -> None:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._measure())

    async def _measure(self) -> None:
        """Measure the loop's lag while turns run or wait; end when there are none."""
        while self.active or self._waiting:
            started = time.monotonic()
            await asyncio.sleep(PROBE)
            self.observe(time.monotonic() - started - PROBE)
