"""The executor's room: what a claim in flight holds, and no job started twice."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest

from notifyq import Registry
from notifyq.models import ClaimedJob
from notifyq.worker.executor import Executor, Running, StopReason, _RunQueue

pytestmark = pytest.mark.anyio


def _job(job_id: int, attempts: int = 1) -> ClaimedJob:
    now = datetime.now(UTC)
    return ClaimedJob(
        id=job_id, queue="q", task="hold", payload="{}", attempts=attempts, max_attempts=3,
        priority=0, run_at=now, created_at=now, lease_expires_at=now,
    )  # fmt: skip


def test_a_claim_in_flight_holds_its_runners_until_it_is_done() -> None:
    executor = Executor(concurrency=3, registry=Registry(), report=lambda _: None)
    with executor.reserve(2):
        assert executor.free == 1  # a hand-over now finds one runner, not three
    assert executor.free == 3


async def test_a_job_already_running_here_is_not_started_twice() -> None:
    release = anyio.Event()
    registry = Registry()

    @registry.task(name="hold")
    async def hold() -> None:
        await release.wait()

    results: list[object] = []
    executor = Executor(concurrency=2, registry=registry, report=results.append)
    async with anyio.create_task_group() as tg:
        await tg.start(executor.run)
        executor.start(_job(7))
        executor.start(_job(7))  # its hand-over message after it was adopted, say
        assert executor.free == 1
        release.set()
        with anyio.fail_after(5):
            await executor.wait_idle()
        tg.cancel_scope.cancel()
    assert len(results) == 1


async def test_a_lost_lease_stops_only_the_attempt_it_was_taken_for_and_reports_after_running() -> None:
    """A beat's lost lease names (job, attempt): a retry of the job already running here as the
    next attempt is left alone. The outcome is reported once the job no longer counts as running."""
    registry = Registry()

    @registry.task(name="hold")
    async def hold() -> None:
        await anyio.sleep_forever()

    running_when_reported: list[bool] = []
    executor = Executor(concurrency=2, registry=registry, report=lambda r: running_when_reported.append(
        r.job_id in executor.running
    ))  # fmt: skip
    async with anyio.create_task_group() as tg:
        await tg.start(executor.run)
        executor.start(_job(7, attempts=2))
        assert not executor.stop(7, StopReason.LEASE_LOST, attempt=1)
        assert not executor.stop(8, StopReason.LEASE_LOST, attempt=1)
        assert 7 in executor.running
        assert executor.stop(7, StopReason.CANCEL_REQUESTED, attempt=2)  # this one reports its end
        with anyio.fail_after(5):
            await executor.wait_idle()
        tg.cancel_scope.cancel()
    assert running_when_reported == [False]


async def test_runners_cancelled_while_waiting_lose_no_job() -> None:
    """A runner cancelled while it waits (the worker stops) leaves the queue: a job put after it is
    not handed to it; and a job handed to it after its cancellation, before it ran again, goes
    back to the queue for another runner."""
    queue = _RunQueue()
    got: list[Running] = []

    async def runner() -> None:
        got.append(await queue.get())

    first, second = Running(_job(1)), Running(_job(2))
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    queue.put(first)  # no runner waits any more: it stays queued
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner)
        await anyio.wait_all_tasks_blocked()
        assert got == [first]  # taken from the queue
        tg.start_soon(runner)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()  # the runner is cancelled, but has not run since ...
        queue.put(second)  # ... when a job is handed to it
    assert got == [first]
    with anyio.fail_after(5):  # lost, it would never come
        assert await queue.get() is second
