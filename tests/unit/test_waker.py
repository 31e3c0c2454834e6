"""The waker's contract with the claimer: notifications, timers and the poll, without lost wake-ups."""

from __future__ import annotations

import anyio
import pytest

from notifyq.worker.waker import Wake, Waker

pytestmark = pytest.mark.anyio


async def test_a_wake_before_the_wait_is_not_lost() -> None:
    waker = Waker()
    waker.wake()
    with anyio.fail_after(1):
        assert await waker.wait(60) is Wake.NOTIFIED


async def test_clear_forgets_an_earlier_wake() -> None:
    waker = Waker()
    waker.wake()
    waker.clear()
    assert await waker.wait(0.01) is Wake.POLL


async def test_a_wake_during_the_wait_ends_it() -> None:
    waker = Waker()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_wake_soon, waker)
        with anyio.fail_after(5):
            assert await waker.wait(60) is Wake.NOTIFIED


async def test_a_timer_set_during_the_wait_ends_it_before_the_poll() -> None:
    waker = Waker()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_schedule_soon, waker, 0.05)
        with anyio.fail_after(5):
            assert await waker.wait(60) is Wake.TIMER
    assert waker.deadline is None


async def test_the_earlier_deadline_wins_and_a_due_one_wakes_at_once() -> None:
    waker = Waker()
    waker.schedule(50)
    first = waker.deadline
    waker.schedule(100)
    assert waker.deadline == first
    waker.schedule(0)
    with anyio.fail_after(1):
        assert await waker.wait(60) is Wake.NOTIFIED


async def _wake_soon(waker: Waker) -> None:
    await anyio.sleep(0.02)
    waker.wake()


async def _schedule_soon(waker: Waker, delay: float) -> None:
    await anyio.sleep(0.02)
    waker.schedule(delay)
