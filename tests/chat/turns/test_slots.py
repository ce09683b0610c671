"""The adaptive turn slots (chat/turns/slots.py): round robin between clients (first come
first served within one), a limit that follows the event loop's lag, and no slot lost to
a cancelled waiter."""

from __future__ import annotations

import asyncio

import pytest

from chat.turns.slots import FLOOR, START, TurnSlots

pytestmark = pytest.mark.asyncio


async def _hold(slots: TurnSlots, order: list[int], n: int, release: asyncio.Event) -> None:
    await slots.acquire()
    order.append(n)
    await release.wait()
    slots.release()


async def test_waiters_get_slots_in_arrival_order_within_the_limit():
    slots = TurnSlots(ceiling=2, lag_target=10.0)  # a lag this high is never reached
    order: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_hold(slots, order, n, release)) for n in range(5)]
    await asyncio.sleep(0.01)
    assert order == [0, 1] and slots.active == 2
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4] and slots.active == 0


async def test_the_limit_falls_with_lag_and_grows_back_while_turns_wait():
    slots = TurnSlots(ceiling=64, lag_target=0.01)
    assert slots.limit == START
    slots.active = START
    slots.observe(0.05)  # the loop is late: a quarter fewer slots
    assert slots.limit == START * 3 // 4
    for _ in range(10):
        slots.observe(0.05)
    assert slots.limit == FLOOR
    slots.observe(0.001)  # fine again, but nobody waits: the limit stays
    assert slots.limit == FLOOR
    slots._waiting.push("someone", asyncio.get_running_loop().create_future())
    slots.active = FLOOR
    slots.observe(0.001)
    assert slots.limit == FLOOR + 1 and slots.active == FLOOR + 1  # and the waiter got it


async def test_the_limit_never_exceeds_the_ceiling():
    slots = TurnSlots(ceiling=3, lag_target=0.01)
    assert slots.limit == 3
    slots.active = 3
    slots._waiting.push("someone", asyncio.get_running_loop().create_future())
    slots.observe(0.0)
    assert slots.limit == 3 and slots.active == 3


async def test_a_cancelled_waiter_takes_no_slot():
    slots = TurnSlots(ceiling=1, lag_target=10.0)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    third = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.sleep(0)
    slots.release()
    await asyncio.wait_for(third, 1)
    assert slots.active == 1 and not slots._waiting


async def test_a_waiter_cancelled_just_after_it_was_given_a_slot_passes_it_on():
    slots = TurnSlots(ceiling=1, lag_target=10.0)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    third = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0.01)
    slots.release()  # the slot goes to `waiter`, which has not run yet...
    waiter.cancel()  # ...and is cancelled before it does
    await asyncio.wait_for(third, 1)
    assert waiter.cancelled() and slots.active == 1 and not slots._waiting


async def _hold_as(slots: TurnSlots, client: str, order: list[str], release: asyncio.Event):
    await slots.acquire(client)
    order.append(client)
    await release.wait()
    slots.release()


async def test_a_flood_from_one_client_delays_its_own_turns_not_others():
    slots = TurnSlots(ceiling=1, lag_target=10.0)
    order: list[str] = []
    release = asyncio.Event()
    flood = [asyncio.create_task(_hold_as(slots, "10.0.0.1", order, release)) for _ in range(50)]
    await asyncio.sleep(0.01)
    others = [
        asyncio.create_task(_hold_as(slots, client, order, release))
        for client in ("10.0.0.2", "10.0.0.3")
    ]
    await asyncio.sleep(0.01)
    assert order == ["10.0.0.1"]  # the flood's first turn holds the one slot
    release.set()
    await asyncio.gather(*flood, *others)
    # Round robin: the flood's next turn, then each other client, then the flood again
    # (first come first served would have made them wait for all 50).
    assert order[:5] == ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]
    assert len(order) == 52


async def test_turns_of_one_client_keep_their_order():
    slots = TurnSlots(ceiling=1, lag_target=10.0)
    order: list[int] = []
    release = asyncio.Event()

    async def hold(n: int, client: str) -> None:
        await slots.acquire(client)
        order.append(n)
        await release.wait()
        slots.release()

    tasks = [asyncio.create_task(hold(n, "a" if n % 2 else "b")) for n in range(6)]
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(*tasks)
    assert [n for n in order if n % 2] == [1, 3, 5]
    assert [n for n in order if not n % 2] == [0, 2, 4]
