"""The NOTIFY trigger: once per queue per statement, plain-SQL inserts wake workers, timers for later."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import anyio
import psycopg
import pytest

from notifyq import Registry, Settings
from tests.helpers import (
    add_waiter,
    demand_lapsed,
    expire_demand,
    hold_demand,
    job_status,
    running_worker,
    wait_until,
)

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
        await hold_demand(aconn)  # some worker waits somewhere (0011): the trigger looks further
        await aconn.execute(
            "INSERT INTO notifyq.jobs (task, queue, run_at)"
            " VALUES ('t', 'a', now()), ('t', 'b', now() + interval '30 seconds')"
        )
        await add_waiter(aconn, "b")
        await aconn.execute("INSERT INTO notifyq.jobs (task, queue) VALUES ('t', 'a')")
        got = [n.channel async for n in listener.notifies(timeout=0.5)]
    assert got == ["notifyq:b"]


async def test_a_waiter_is_notified_only_while_the_demand_lease_runs(
    database_url: str, aconn: psycopg.AsyncConnection
) -> None:
    """Producers look into queue_waiters only while the demand lease (0011) lies ahead: an armed
    row whose worker stopped renewing it is skipped (the trigger's cheap early return); a renewal
    brings the notifications back."""
    insert = "INSERT INTO notifyq.jobs (task, queue) VALUES ('t', 'a')"
    armed = "SELECT woken_at IS NULL FROM notifyq.queue_waiters"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute('LISTEN "notifyq:a"')
        await add_waiter(aconn, "a")
        await expire_demand(aconn)  # the lease ran out
        await aconn.execute(insert)
        assert await (await aconn.execute(armed)).fetchone() == (True,)  # not stamped: skipped
        await aconn.execute("SELECT notifyq.renew_demand()")
        await aconn.execute(insert)
        assert await (await aconn.execute(armed)).fetchone() == (False,)
        got = [n.channel async for n in listener.notifies(timeout=0.5)]
    assert got == ["notifyq:a"]


async def test_renew_demand_moves_the_lease_a_second_ahead_only_when_less_than_0_7_s_is_left(
    aconn: psycopg.AsyncConnection,
) -> None:
    now_ms = "extract(epoch FROM clock_timestamp()) * 1000"
    cur = await aconn.execute(f"SELECT {now_ms}, notifyq.renew_demand(), notifyq.renew_demand(), {now_ms}")
    row = await cur.fetchone()
    assert row is not None
    before, renewed, again, after = row
    assert before + 999 <= renewed <= after + 1001  # a second ahead, in whole milliseconds (rounded)
    assert again is None  # 1 s left: nothing written (a sequence write is WAL-logged)

    async def renews_with(left_ms: int) -> bool:
        # one statement: the lease set and the renewal microseconds apart, however slow the machine
        cur = await aconn.execute(
            "WITH lease AS MATERIALIZED ("
            f" SELECT setval('notifyq.demand_until', ({now_ms})::bigint + {left_ms})"
            ") SELECT notifyq.renew_demand() FROM lease"
        )
        row = await cur.fetchone()
        return row is not None and row[0] is not None

    assert await renews_with(600)
    assert not await renews_with(800)


async def test_a_worker_asleep_longer_than_the_demand_lease_is_still_notified(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    """The lease runs a second from a renewal; a sleeping worker renews it every 0.25 s, so
    producers keep looking for it however long it sleeps."""
    ran = anyio.Event()

    @registry.task
    async def woke() -> None:
        ran.set()

    lease_ahead = (
        "SELECT pg_sequence_last_value('notifyq.demand_until') > extract(epoch FROM clock_timestamp()) * 1000"
    )
    # no rechecks and a 60 s poll: only a notification wakes it
    async with running_worker(settings, registry, poll_interval=60, recheck_after=0) as worker:
        await wait_until(lambda: worker.claimer.sleeping)
        renewals = worker.claimer.renewals
        arms = worker.claimer.arms
        await wait_until(lambda: worker.claimer.renewals >= renewals + 6)  # 1.5 s asleep
        assert worker.claimer.arms == arms  # asleep all along: no arm renewed the lease
        assert await (await aconn.execute(lease_ahead)).fetchone() == (True,)
        await aconn.execute("INSERT INTO notifyq.jobs (task) VALUES ('woke')")
        with anyio.fail_after(10):
            await ran.wait()


async def test_a_worker_that_stalled_past_its_demand_lease_rechecks_when_it_renews(
    settings: Settings, registry: Registry, database_url: str
) -> None:
    """A stalled worker cannot renew: the lease runs out and a producer meanwhile notifies nobody.
    The renewal that ends the stall comes too late to be sure of the lease, so a recheck follows
    and claims the job, instead of the poll (a minute here) or the next recheck."""
    ran = anyio.Event()

    @registry.task
    async def unannounced() -> None:
        ran.set()

    async with running_worker(settings, registry, poll_interval=60, recheck_after=0) as worker:
        await wait_until(lambda: worker.claimer.sleeping)
        renewals = worker.claimer.renewals
        await wait_until(lambda: worker.claimer.renewals > renewals)  # the lease ends within a second
        # the event loop stalls (blocking calls on purpose) past the lease; a producer commits
        time.sleep(1.5)  # noqa: ASYNC251 - the stall, blocking on purpose
        with psycopg.connect(database_url, autocommit=True) as producer:
            producer.execute("INSERT INTO notifyq.jobs (task) VALUES ('unannounced')")
            lapsed = demand_lapsed(producer)
        assert lapsed  # so the trigger notified nobody
        with anyio.fail_after(10):
            await ran.wait()
        assert worker.claimer.lapses >= 1


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


async def test_a_scheduled_insert_carries_the_delay_until_due_while_some_worker_waits(
    database_url: str, aconn: psycopg.AsyncConnection
) -> None:
    scheduled = "INSERT INTO notifyq.jobs (task, run_at) VALUES ('t', now() + interval '30 seconds')"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute('LISTEN "notifyq:default"')
        await aconn.execute(scheduled)  # nobody waits: busy workers ask when they go idle
        await hold_demand(aconn)
        await aconn.execute(scheduled)
        got = [n async for n in listener.notifies(timeout=0.5)]
    assert len(got) == 1
    assert 29 < float(got[0].payload) <= 30


async def test_next_run_at_is_the_earliest_queued_run_at_over_priorities_and_queues(
    aconn: psycopg.AsyncConnection,
) -> None:
    """What a worker going idle sets its timer by: one index probe per priority present."""
    later = datetime(2100, 1, 1, tzinfo=UTC)  # fixed times: the answer does not move with the clock
    due = datetime(2000, 1, 1, tzinfo=UTC)

    async def next_run_at(*queues: str) -> datetime | None:
        cur = await aconn.execute("SELECT notifyq.next_run_at(%s)", (list(queues),))
        row = await cur.fetchone()
        return None if row is None else row[0]

    assert await next_run_at("a", "b") is None
    rows = [
        ("a", 0, later + timedelta(seconds=5), "queued"),
        ("a", 9, later + timedelta(seconds=50), "queued"),
        ("a", -3, later + timedelta(seconds=40), "queued"),
        ("a", 0, later + timedelta(seconds=2), "cancelled"),  # not queued
        ("b", 5, later + timedelta(seconds=3), "queued"),
        ("c", 0, due, "queued"),
    ]
    for queue, priority, run_at, status in rows:
        await aconn.execute(
            "INSERT INTO notifyq.jobs (task, queue, priority, run_at, status, finished_at)"
            " VALUES ('t', %s, %s, %s, %s, CASE WHEN %s = 'queued' THEN NULL ELSE now() END)",
            (queue, priority, run_at, status, status),
        )
    assert await next_run_at("a") == later + timedelta(seconds=5)
    assert await next_run_at("a", "b") == later + timedelta(seconds=3)
    assert await next_run_at("b", "c") == due  # in the past: the worker claims now
    assert await next_run_at("d") is None


async def test_a_worker_busy_when_a_job_was_scheduled_runs_it_when_due_without_the_poll(
    database_url: str, settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    """Nobody waited when the job was scheduled, so its insert notified nobody (0011): the worker
    reads the earliest run_at itself as it goes idle and sets its timer."""
    release = anyio.Event()
    ran = anyio.Event()

    @registry.task
    async def hold() -> None:
        await release.wait()

    @registry.task
    async def later() -> None:
        ran.set()

    # one runner and no hand-over: while `hold` runs the claimer waits for room, not for jobs, so
    # it renews no demand; no rechecks and a 60 s poll
    config = {"concurrency": 1, "hand_over_max_rate": 0, "poll_interval": 60, "recheck_after": 0}
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener,
        running_worker(settings, registry, **config) as worker,
    ):
        await listener.execute('LISTEN "notifyq:default"')
        await wait_until(lambda: worker.claimer.sleeping)
        await aconn.execute("INSERT INTO notifyq.jobs (task) VALUES ('hold')")
        await wait_until(lambda: worker.executor.free == 0)
        await expire_demand(aconn)  # its lease ran out
        cur = await aconn.execute(
            "INSERT INTO notifyq.jobs (task, run_at)"
            " VALUES ('later', now() + interval '1 second') RETURNING id"
        )
        row = await cur.fetchone()
        assert row is not None
        release.set()  # the worker goes idle well before the job is due: only a timer runs it
        with anyio.fail_after(10):
            await ran.wait()
        await wait_until(lambda: _is(aconn, row[0], "succeeded"))
        payloads = [n.payload async for n in listener.notifies(timeout=0.2)]
    assert all(p == "" for p in payloads)  # the hold's wake-up: the scheduled insert sent no delay


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


async def test_the_demand_lease_needs_no_grant_of_its_own(aconn: psycopg.AsyncConnection) -> None:
    """A producer's role with INSERT alone still inserts (every insert reads the lease), and a
    role without rights on the sequence still renews it (renew_demand runs as its owner)."""
    role = f"notifyq_producer_{uuid.uuid4().hex[:12]}"
    await aconn.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        await aconn.execute(f"GRANT USAGE ON SCHEMA notifyq TO {role}")
        await aconn.execute(f"GRANT INSERT ON notifyq.jobs TO {role}")
        await expire_demand(aconn)  # nobody waits: the cheap path
        await aconn.execute(f"SET ROLE {role}")
        await aconn.execute("INSERT INTO notifyq.jobs (task) VALUES ('t')")
        renewed = await (await aconn.execute("SELECT notifyq.renew_demand()")).fetchone()
        await aconn.execute("RESET ROLE")
        assert renewed is not None
        assert renewed[0] is not None
        count = await (await aconn.execute("SELECT count(*) FROM notifyq.jobs")).fetchone()
        assert count == (1,)
    finally:
        await aconn.execute("RESET ROLE")
        await aconn.execute(f"DROP OWNED BY {role}")
        await aconn.execute(f"DROP ROLE {role}")
