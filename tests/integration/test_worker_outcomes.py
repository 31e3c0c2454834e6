"""What a handler's result becomes: success, retries with backoff, exhaustion, Fail/Cancel, timeouts,
sync handlers, unknown tasks and undecodable payloads."""

from __future__ import annotations

import time

import anyio
import msgspec
import psycopg
import pytest

from notifyq import Cancel, Client, Fail, JobContext, JobStatus, Registry, Retry, RetryPolicy, Settings
from tests.helpers import running_worker, wait_until

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(base=0.05, factor=1, jitter=0)


class Point(msgspec.Struct):
    x: int


async def _final(client: Client, job_id: int, status: JobStatus) -> None:
    async def reached() -> bool:
        return (await client.get(job_id)).status is status

    await wait_until(reached, seconds=15)


async def test_a_failing_job_is_retried_then_succeeds(
    settings: Settings, registry: Registry, client: Client
) -> None:
    attempts: list[int] = []

    @registry.task(retry=FAST)
    async def flaky(ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError(f"boom {ctx.attempt}")

    async with running_worker(settings, registry, poll_interval=60):
        job_id = await client.enqueue(flaky)
        await _final(client, job_id, JobStatus.SUCCEEDED)
    job = await client.get(job_id)
    assert attempts == [1, 2, 3]
    assert [e.attempt for e in job.errors] == [1, 2]
    assert "RuntimeError: boom 2" in (job.last_error or "")


async def test_exhausted_jobs_stay_failed_with_their_error_history(
    settings: Settings, registry: Registry, client: Client
) -> None:
    @registry.task(retry=FAST, max_attempts=3)
    def always_fails() -> None:
        raise ValueError("nope")

    async with running_worker(settings, registry, poll_interval=60):
        job_id = await client.enqueue(always_fails)
        await _final(client, job_id, JobStatus.FAILED)
    job = await client.get(job_id)
    assert (job.attempts, len(job.errors), job.finished_at is not None) == (3, 3, True)
    assert all("ValueError: nope" in e.error for e in job.errors)
    result = await client.retry(job_id)
    assert result.retried
    assert (await client.get(job_id)).status is JobStatus.QUEUED


async def test_retry_after_fail_and_cancel_steer_the_job(
    settings: Settings, registry: Registry, client: Client
) -> None:
    @registry.task
    async def steer(payload: dict[str, str], ctx: JobContext) -> None:
        if payload["do"] == "retry" and ctx.attempt == 1:
            raise Retry(after=0.05, reason="later")
        if payload["do"] == "fail":
            raise Fail("bad data")
        if payload["do"] == "cancel":
            raise Cancel("not needed")

    async with running_worker(settings, registry, poll_interval=60):
        retried = await client.enqueue(steer, {"do": "retry"})
        failed = await client.enqueue(steer, {"do": "fail"})
        cancelled = await client.enqueue(steer, {"do": "cancel"})
        await _final(client, retried, JobStatus.SUCCEEDED)
        await _final(client, failed, JobStatus.FAILED)
        await _final(client, cancelled, JobStatus.CANCELLED)
    assert (await client.get(retried)).attempts == 2
    assert (await client.get(failed)).attempts == 1
    assert "Fail: bad data" in ((await client.get(failed)).last_error or "")


async def test_a_timed_out_handler_is_cancelled_and_recorded(
    settings: Settings, registry: Registry, client: Client
) -> None:
    @registry.task(timeout=0.2, max_attempts=1)
    async def slow() -> None:
        await anyio.sleep(30)

    async with running_worker(settings, registry, poll_interval=60):
        job_id = await client.enqueue(slow)
        await _final(client, job_id, JobStatus.FAILED)
    assert "timed out after 0.2s" in ((await client.get(job_id)).last_error or "")


async def test_sync_handlers_run_in_threads(settings: Settings, registry: Registry, client: Client) -> None:
    seen: list[int] = []

    @registry.task
    def blocking(payload: dict[str, int]) -> None:
        time.sleep(0.01)  # a blocking call must not stall the event loop
        seen.append(payload["n"])

    async with running_worker(settings, registry, poll_interval=60):
        ids = [await client.enqueue(blocking, {"n": i}) for i in range(20)]
        for job_id in ids:
            await _final(client, job_id, JobStatus.SUCCEEDED)
    assert sorted(seen) == list(range(20))


async def test_unknown_tasks_are_retried_then_failed_without_stopping_other_jobs(
    settings: Settings, registry: Registry, client: Client
) -> None:
    done = anyio.Event()

    @registry.task
    async def known() -> None:
        done.set()

    async with running_worker(settings, registry, poll_interval=60):
        unknown = await client.enqueue("nobody_has_this", {"x": 1}, max_attempts=2)
        await client.enqueue(known)
        with anyio.fail_after(10):
            await done.wait()
        await _final(client, unknown, JobStatus.QUEUED)
    job = await client.get(unknown)
    assert job.attempts == 1
    assert "not registered on this worker" in (job.last_error or "")


async def test_an_undecodable_payload_fails_at_once(
    settings: Settings, registry: Registry, client: Client, aconn: psycopg.AsyncConnection
) -> None:
    @registry.task
    async def typed(point: Point) -> None: ...

    cur = await aconn.execute(
        """INSERT INTO notifyq.jobs (task, payload) VALUES ('typed', '{"x": "NaN"}') RETURNING id"""
    )
    row = await cur.fetchone()
    assert row is not None
    async with running_worker(settings, registry, poll_interval=60):
        await _final(client, row[0], JobStatus.FAILED)
    job = await client.get(row[0])
    assert job.attempts == 1
    assert "does not match Point" in (job.last_error or "")
