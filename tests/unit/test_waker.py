"""The waker's contract with the claimer: notifications, timers and the poll, without lost wake-ups."""

from __future__ import annotations

import anyio
import anyio.lowlevel
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


async def test_the_first_wake_since_a_mark_is_kept_and_a_mark_forgets_it() -> None:
    """The claimer's wake grace counts from the first notification after it last published demand."""
    waker = Waker()
    assert waker.first_wake_since_mark is None
    waker.wake()
    first = waker.first_wake_since_mark
    assert first is not None
    await anyio.lowlevel.checkpoint()  # time moves on; a later wake-up must not move the mark's time
    waker.wake()
    waker.clear()
    assert waker.first_wake_since_mark == first
    waker.mark()
    assert waker.first_wake_since_mark is None


async def test_the_claimers_own_wake_ends_a_wait_but_starts_no_grace() -> None:
    waker = Waker()
    waker.wake(grace=False)
    with anyio.fail_after(1):
        assert await waker.wait(60, refills=True) is Wake.NOTIFIED
    assert waker.first_wake_since_mark is None


async def test_a_refill_request_ends_only_a_wait_that_takes_refills() -> None:
    waker = Waker()
    waker.request_refill()
    assert await waker.wait(0.01) is Wake.POLL  # a linger or wake-grace wait ignores it
    with anyio.fail_after(1):
        assert await waker.wait(60, refills=True) is Wake.REFILL
    assert await waker.wait(0.01, refills=True) is Wake.POLL  # answered once


async def test_a_notification_wins_over_a_refill_and_arming_drops_the_refill() -> None:
    waker = Waker()
    waker.request_refill()
    waker.wake()
    assert await waker.wait(60, refills=True) is Wake.NOTIFIED
    waker.clear()
    waker.mark()  # the claimer armed: fresh slots, nothing to refill
    assert await waker.wait(0.01, refills=True) is Wake.POLL
