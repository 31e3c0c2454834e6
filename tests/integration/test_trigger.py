"""The NOTIFY trigger: once per queue per statement, plain-SQL inserts wake workers, timers for later."""

from __future__ import annotations

import anyio
import psycopg
import pytest

from notifyq import Registry, Settings
from tests.helpers import add_waiter, job_status, running_worker, wait_until

pytestmark = pytest.mark.anyio


async def test_one_notification_per_waiting_queue_per_statement(
    database_url: str, aconn: psycopg.AsyncConnection
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute('LISTEN "notifyq:a"')
        await listener.execute('LISTEN "notifyq:b"')
        await add_waiter(aconn, "a", "b")
        await aconn.execute(
            "INSERT INTO notifyq.jobs (task, queue)"
            " SELECT 't', CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END FROM generate_series(1, 100) i"
        )
        await add_waiter(aconn, "a")
        await aconn.execute("INSERT INTO notifyq.jobs (task, queue) VALUES ('t', 'a')")
        got = [(n.channel, n.payload) async for n in listener.notifies(timeout=0.5)]
    assert sorted(got) == [("notifyq:a", ""), ("notifyq:a", ""), ("notifyq:b", "")]


async def test_no_notification_while_no_worker_waits_or_after_the_wake_grace(
    database_url: str, aconn: psycopg.AsyncConnection
) -> None:
    insert = "INSERT INTO notifyq.jobs (task, queue) VALUES ('t', 'a')"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute('LISTEN "notifyq:a"')
        await aconn.execute(insert)
        await add_waiter(aconn, "a")
        await aconn.execute(insert)
        cur = await aconn.execute("SELECT woken_at IS NOT NULL FROM notifyq.queue_waiters")
        assert await cur.fetchone() == (True,)
        # a worker woken long ago and not re-armed is busy: no more notifications
        await aconn.execute("UPDATE notifyq.queue_waiters SET woken_at = now() - interval '1 minute'")
        await aconn.execute(insert)
        got = [n.channel async for n in listener.notifies(timeout=0.5)]
    assert got == ["notifyq:a"]


async def test_past_the_fast_path_each_queue_is_still_gated_on_its_own_waiters(
    database_url: str, aconn: psycopg.AsyncConnection
) -> None:
    """A waiter on queue b, or a scheduled row for b in the same statement, gets the trigger past
    its early return (0007); the due job for a, whose queue nobody waits on, still notifies nobody."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute('LISTEN "notifyq:a"')
        await listener.execute('LISTEN "notifyq:b"')
        await aconn.execute(
            "INSERT INTO notifyq.jobs (task, queue, run_at)"
            " VALUES ('t', 'a', now()), ('t', 'b', now() + interval '30 seconds')"
        )
        await add_waiter(aconn, "b")
        await aconn.execute("INSERT INTO notifyq.jobs (task, queue) VALUES ('t', 'a')")
        got = [n.channel async for n in listener.notifies(timeout=0.5)]
    assert got == ["notifyq:b"]


async def test_an_idle_worker_publishes_demand_and_withdraws_it_on_stop(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    async def waiting() -> list[tuple[str, object]]:
        cur = await aconn.execute("SELECT queue, worker_id FROM notifyq.queue_waiters ORDER BY queue")
        return [(str(q), w) for q, w in await cur.fetchall()]

    async with running_worker(settings, registry, queues=("a", "b"), poll_interval=60) as worker:

        async def published() -> bool:
            return await waiting() == [("a", worker.id), ("b", worker.id)]

        await wait_until(published)
    assert await waiting() == []


async def test_a_scheduled_insert_carries_the_delay_until_due(
    database_url: str, aconn: psycopg.AsyncConnection
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute('LISTEN "notifyq:default"')
        await aconn.execute(
            "INSERT INTO notifyq.jobs (task, run_at) VALUES ('t', now() + interval '30 seconds')"
        )
        got = [n async for n in listener.notifies(timeout=2, stop_after=1)]
    assert 29 < float(got[0].payload) <= 30


async def test_a_plain_sql_insert_wakes_an_idle_worker_long_before_the_poll(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    ran = anyio.Event()

    @registry.task
    async def from_sql(payload: dict[str, str]) -> None:
        assert payload == {"from": "psql"}
        ran.set()

    async with running_worker(settings, registry, poll_interval=60) as worker:
        # idle: its claims found nothing and it sleeps on its 60 s poll (only a notification wakes it)
        await wait_until(lambda: worker.claimer.sleeping)
        await aconn.execute(
            """INSERT INTO notifyq.jobs (task, payload) VALUES ('from_sql', '{"from": "psql"}')"""
        )
        with anyio.fail_after(5):
            await ran.wait()


async def test_a_scheduled_job_runs_when_due_without_waiting_for_the_poll(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    ran = anyio.Event()

    @registry.task
    async def later() -> None:
        ran.set()

    async with running_worker(settings, registry, poll_interval=60) as worker:
        await wait_until(lambda: worker.claimer.sleeping)
        cur = await aconn.execute(
            "INSERT INTO notifyq.jobs (task, run_at)"
            " VALUES ('later', now() + interval '0.3 seconds') RETURNING id"
        )
        row = await cur.fetchone()
        assert row is not None
        with anyio.fail_after(10):
            await ran.wait()
        await wait_until(lambda: _is(aconn, row[0], "succeeded"))


async def _is(aconn: psycopg.AsyncConnection, job_id: int, status: str) -> bool:
    return await job_status(aconn, job_id) == status
