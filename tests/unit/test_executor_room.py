"""The executor's room: what a claim in flight holds, and no job started twice."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest

from notifyq import Registry
from notifyq.models import ClaimedJob
from notifyq.worker.executor import Executor

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
