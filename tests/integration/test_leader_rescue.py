"""The leader: election and hand-over, rescue of dead workers' jobs and expired leases, late finishes
refused, retention, the notification-queue guard, the workers registry."""

from __future__ import annotations

import gc
import uuid

import anyio
import psycopg
import psycopg.waiting
import pytest

from notifyq import Client, JobStatus, Registry, Settings, queries
from notifyq.leader.prune import Pruner
from notifyq.leader.rescue import Rescuer
from notifyq.leader.stats import NotifyQueueGuard
from notifyq.models import JobResult, Outcome
from notifyq.sync import SyncClient
from tests.helpers import running_worker, wait_until

pytestmark = pytest.mark.anyio

FAST_LEADER = {"leader_tick": 0.05, "rescue_grace": 0.0, "dead_confirm": 0.1, "poll_interval": 60}


async def test_one_leader_at_a_time_and_another_takes_over(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    async with (
        running_worker(settings, registry, **FAST_LEADER) as a,
        running_worker(settings, registry, **FAST_LEADER) as b,
    ):
        await wait_until(lambda: a.elector.is_leader or b.elector.is_leader)
        assert not (a.elector.is_leader and b.elector.is_leader)
        await aconn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'notifyq leader'"
            " AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
        )
        await wait_until(
            lambda: a.elector.terms + b.elector.terms >= 2 and (a.elector.is_leader or b.elector.is_leader),
            seconds=10,
        )
    workers = [w for w in (a, b) if w.elector.is_leader]
    assert len(workers) <= 1


async def _insert_running(
    aconn: psycopg.AsyncConnection, *, holder: uuid.UUID, attempts: int, max_attempts: int, lease: str
) -> int:
    cur = await aconn.execute(
        "INSERT INTO notifyq.jobs"
        " (task, status, attempts, max_attempts, lease_holder, lease_expires_at, started_at) VALUES"
        " ('t', 'running', %s, %s, %s, now() + %s::interval, now()) RETURNING id",
        (attempts, max_attempts, holder, lease),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _register_dead_worker(aconn: psycopg.AsyncConnection) -> uuid.UUID:
    worker_id = uuid.uuid4()
    await aconn.execute(
        "INSERT INTO notifyq.workers (id, host, pid, queues, concurrency, lock_key)"
        " VALUES (%s, 'gone', 1, '{default}', 1, 42)",
        (worker_id,),
    )
    return worker_id


async def test_a_worker_stopped_while_it_leads_closes_the_leader_session(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping cancels the elector; its session is closed even though psycopg yields to the loop
    on the way out (it does when the loop was busy; forced here). `async with session` rolled back
    first, that yield was cancelled too and the close never ran: a ResourceWarning, an error here."""
    monkeypatch.setattr(psycopg.waiting, "MAX_BUSY_TIME", 0.0)
    async with running_worker(settings, registry, **FAST_LEADER) as worker:
        await wait_until(lambda: worker.elector.is_leader)
    gc.collect()  # a leaked connection warns when it is collected

    async def leader_session_gone() -> bool:
        cur = await aconn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'notifyq leader'"
        )
        return await cur.fetchone() == (0,)

    await wait_until(leader_session_gone)  # its backend ends a moment after the close


async def test_rescue_requeues_a_dead_workers_jobs_and_fails_those_out_of_attempts(
    settings: Settings, client: Client, aconn: psycopg.AsyncConnection
) -> None:
    dead = await _register_dead_worker(aconn)
    requeued = await _insert_running(aconn, holder=dead, attempts=1, max_attempts=3, lease="1 hour")
    exhausted = await _insert_running(aconn, holder=dead, attempts=3, max_attempts=3, lease="1 hour")
    alive_elsewhere = await _insert_running(
        aconn, holder=uuid.uuid4(), attempts=1, max_attempts=3, lease="1 hour"
    )
    rescuer = Rescuer(pool=client.pool, statements=client.statements, grace=0, confirm=0)
    rescuer.start_leading()
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as session:
        result = await rescuer.run_once(session)
    assert result.dead_workers == [dead]
    assert {r.id: r.status for r in result.rescued} == {
        requeued: JobStatus.QUEUED,
        exhausted: JobStatus.FAILED,
    }
    assert "died while running" in ((await client.get(requeued)).last_error or "")
    assert (await client.get(alive_elsewhere)).status is JobStatus.RUNNING
    cur = await aconn.execute("SELECT count(*) FROM notifyq.workers")
    assert await cur.fetchone() == (0,)


async def test_no_lock_based_rescue_during_the_grace_after_a_lost_connection(
    settings: Settings, client: Client, aconn: psycopg.AsyncConnection
) -> None:
    dead = await _register_dead_worker(aconn)
    job = await _insert_running(aconn, holder=dead, attempts=1, max_attempts=3, lease="1 hour")
    rescuer = Rescuer(pool=client.pool, statements=client.statements, grace=3600, confirm=0)
    rescuer.start_leading(after_connection_loss=True)
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as session:
        result = await rescuer.run_once(session)
    assert (result.dead_workers, result.rescued) == ([], [])
    # nor within `grace` of the server's start (every lock vanishes in a restart)
    rescuer.start_leading()
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as session:
        started = await (
            await session.execute("SELECT now() - pg_postmaster_start_time() < interval '1 hour'")
        ).fetchone()
        assert started is not None
        result = await rescuer.run_once(session)
    young = bool(started[0])
    assert (result.dead_workers == []) is young
    assert (await client.get(job)).status is (JobStatus.RUNNING if young else JobStatus.QUEUED)


async def test_expired_leases_are_rescued_and_a_late_finish_is_refused(
    client: Client, aconn: psycopg.AsyncConnection
) -> None:
    silent = uuid.uuid4()
    job = await _insert_running(aconn, holder=silent, attempts=1, max_attempts=5, lease="-1 second")
    rescuer = Rescuer(pool=client.pool, statements=client.statements, grace=3600, confirm=0)
    async with client.pool.connection() as conn:
        result = await rescuer.run_once(conn)
        assert [r.id for r in result.rescued] == [job]
        late = JobResult(job_id=job, attempt=1, outcome=Outcome.SUCCEEDED)
        written = await queries.fetch_all(
            conn, queries.job_finish_many(client.statements, worker=silent, results=[late])
        )
    assert written == []
    rescued = await client.get(job)
    assert (rescued.status, rescued.lease_holder) == (JobStatus.QUEUED, None)
    assert "lease expired" in (rescued.last_error or "")


async def test_a_live_worker_is_never_judged_dead(
    settings: Settings, registry: Registry, client: Client
) -> None:
    started = anyio.Event()

    @registry.task
    async def long_job() -> None:
        started.set()
        await anyio.sleep(60)

    async with running_worker(settings, registry, **FAST_LEADER) as worker:
        job_id = await client.enqueue(long_job)
        with anyio.fail_after(10):
            await started.wait()
        rescuer = Rescuer(pool=client.pool, statements=client.statements, grace=0, confirm=0)
        rescuer.start_leading()
        async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as session:
            for _ in range(3):
                assert (await rescuer.run_once(session)).dead_workers == []
        assert (await client.get(job_id)).lease_holder == worker.id
        worker.stop(now=True)


async def test_retention_deletes_only_old_finished_jobs(
    client: Client, aconn: psycopg.AsyncConnection
) -> None:
    await aconn.execute(
        "INSERT INTO notifyq.jobs (task, status, started_at, finished_at) VALUES"
        " ('old_ok', 'succeeded', now() - interval '2 days', now() - interval '2 days'),"
        " ('old_cancel', 'cancelled', NULL, now() - interval '2 days'),"
        " ('new_ok', 'succeeded', now(), now()),"
        " ('old_fail', 'failed', now() - interval '2 days', now() - interval '2 days'),"
        " ('ancient_fail', 'failed', now() - interval '8 days', now() - interval '8 days'),"
        " ('old_queued', 'queued', NULL, NULL)"
    )
    await aconn.execute("UPDATE notifyq.jobs SET created_at = now() - interval '9 days'")
    pruner = Pruner(pool=client.pool, statements=client.statements, keep_done=86400, keep_failed=7 * 86400)
    assert await pruner.run_once() == 3
    cur = await aconn.execute("SELECT task FROM notifyq.jobs ORDER BY task")
    assert [r[0] for r in await cur.fetchall()] == ["new_ok", "old_fail", "old_queued"]


async def test_the_guard_reads_the_notification_queue_usage(client: Client) -> None:
    guard = NotifyQueueGuard(pool=client.pool, statements=client.statements, warn_at=0.5)
    usage = await guard.run_once()
    assert 0.0 <= usage < 0.5


async def test_the_guard_ends_a_stuck_notifyq_listener_and_names_other_blockers(
    database_url: str, client: Client, aconn: psycopg.AsyncConnection, caplog: pytest.LogCaptureFixture
) -> None:
    async def connect(name: str) -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(database_url, autocommit=True, application_name=name)

    stuck, other = await connect("notifyq listener"), await connect("someone else")
    try:
        pids = {stuck.info.backend_pid, other.info.backend_pid}
        for conn in (stuck, other):
            await conn.execute("LISTEN flood")
        # neither reads: once their socket buffers are full their backends block sending, and the
        # notification queue can no longer drop what they have not read
        await aconn.execute(
            "SELECT pg_notify('flood', repeat('x', 4000) || i) FROM generate_series(1, 5000) i"
        )

        async def blocked() -> bool:
            cur = await aconn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'ClientWrite' AND pid = ANY(%s)",
                (list(pids),),
            )
            return (await cur.fetchone()) == (2,)

        await wait_until(blocked)
        guard = NotifyQueueGuard(pool=client.pool, statements=client.statements, warn_at=1e-9)
        assert await guard.run_once() > 0
        assert guard.terminated == 0  # seen stuck once: a healthy listener can blip
        await guard.run_once()
        assert guard.terminated == 1  # stuck on two checks in a row: ended

        async def ended() -> bool:
            cur = await aconn.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),))
            return {r[0] for r in await cur.fetchall()} == {other.info.backend_pid}

        await wait_until(ended)
        assert f"other sessions blocked sending to their client: {other.info.backend_pid} (someone else)" in (
            caplog.text
        )
    finally:
        await stuck.close()
        await other.close()


async def test_the_registry_lists_running_workers_and_forgets_stopped_ones(
    settings: Settings, registry: Registry
) -> None:
    async with Client(settings) as client:
        async with running_worker(
            settings, registry, **FAST_LEADER, queues=("a", "b"), concurrency=3
        ) as worker:
            rows = await client.list_workers()
            assert [(w.id, w.queues, w.concurrency) for w in rows] == [(worker.id, ["a", "b"], 3)]
            with SyncClient(settings) as sync:
                assert [w.id for w in sync.list_workers()] == [worker.id]
        assert await client.list_workers() == []
