"""Clock skew between hosts: the database clock alone decides when a job is due, when a lease expires and
when a retry comes back. The worker runs in a process whose wall clock is hours off."""

from __future__ import annotations

import time

import psycopg
import pytest

from notifyq import Client, Registry, Settings
from tests.helpers import job_status, running_worker, wait_until

pytestmark = pytest.mark.anyio

SKEW = 6 * 3600.0


@pytest.fixture(params=[SKEW, -SKEW], ids=["clock-ahead", "clock-behind"])
def skewed_clock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> float:
    """This process's wall clock (time.time, time.time_ns) moved by hours; returns the skew."""
    skew = float(request.param)
    real_time, real_time_ns = time.time, time.time_ns
    monkeypatch.setattr(time, "time", lambda: real_time() + skew)
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + int(skew * 1e9))
    return skew


async def test_a_worker_with_a_skewed_clock_runs_what_the_database_says_is_due(
    settings: Settings,
    registry: Registry,
    client: Client,
    aconn: psycopg.AsyncConnection,
    skewed_clock: float,
) -> None:
    ran: list[str] = []

    @registry.task
    async def mark(payload: str) -> None:
        ran.append(payload)

    # delay is added to now() in the database, so a producer's own skew cannot move it either
    later = await client.enqueue(mark, "later", delay=3600)
    due = await client.enqueue(mark, "due")
    async with running_worker(settings, registry, poll_interval=0.2):

        async def due_done() -> bool:
            return await job_status(aconn, due) == "succeeded"

        await wait_until(due_done, seconds=20)
        # another claim cycle after the hour-away job was written: had the local clock counted, it ran
        after = await client.enqueue(mark, "after")

        async def after_done() -> bool:
            return await job_status(aconn, after) == "succeeded"

        await wait_until(after_done, seconds=20)
    assert ran == ["due", "after"]
    cur = await aconn.execute(
        "SELECT status::text, run_at > now() + interval '50 minutes' FROM notifyq.jobs WHERE id = %s",
        (later,),
    )
    assert await cur.fetchone() == ("queued", True)
