"""Which writes wait for their WAL flush: enqueues and cron's inserts always; the worker's own
bookkeeping (claims, outcomes) not by default (WorkerSettings.synchronous_commit).

A trigger records `synchronous_commit` as each write to the jobs table saw it, so the tests read
the setting the database really applied to each statement. The test database's default is set to
`on` first (the embedded test server runs with it off for speed), and every pool opens after that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from notifyq import Client, Registry, Settings, db, queries
from notifyq.leader.cron import Cron
from tests.helpers import running_worker, wait_until

pytestmark = pytest.mark.anyio

RECORD_SETTING = """
CREATE TABLE public.commit_modes (op text, mode text);
CREATE FUNCTION public.record_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.commit_modes VALUES (TG_OP, current_setting('synchronous_commit'));
    RETURN NULL;
END $$;
CREATE TRIGGER record_commit_mode AFTER INSERT OR UPDATE ON notifyq.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION public.record_commit_mode();
"""


@pytest.fixture
async def modes(aconn: psycopg.AsyncConnection) -> psycopg.AsyncConnection:
    await aconn.execute(RECORD_SETTING)
    cur = await aconn.execute("SELECT current_database()")
    row = await cur.fetchone()
    assert row is not None
    await aconn.execute(
        psycopg.sql.SQL("ALTER DATABASE {} SET synchronous_commit = on").format(
            psycopg.sql.Identifier(row[0])
        )
    )
    return aconn


async def _seen(aconn: psycopg.AsyncConnection) -> list[tuple[str, str]]:
    cur = await aconn.execute("SELECT DISTINCT op, mode FROM public.commit_modes ORDER BY op")
    return [(str(op), str(mode)) for op, mode in await cur.fetchall()]


async def _run_one_job(settings: Settings, **config: object) -> None:
    registry = Registry()

    @registry.task
    async def noop() -> None: ...

    async with Client(settings, registry=registry) as client:
        job_id = await client.enqueue(noop)
        async with running_worker(settings, registry, poll_interval=60, **config) as worker:
            await wait_until(lambda: worker.counters.succeeded == 1)
        assert (await client.get(job_id)).status.value == "succeeded"


async def test_enqueues_wait_for_the_flush_and_the_workers_writes_do_not(
    settings: Settings, modes: psycopg.AsyncConnection
) -> None:
    await _run_one_job(settings)
    # the client's INSERT, then the worker's claim and finish (UPDATEs)
    assert await _seen(modes) == [("INSERT", "on"), ("UPDATE", "off")]


async def test_a_worker_asked_for_synchronous_commit_waits_for_every_flush(
    settings: Settings, modes: psycopg.AsyncConnection
) -> None:
    await _run_one_job(settings, synchronous_commit=True)
    assert await _seen(modes) == [("INSERT", "on"), ("UPDATE", "on")]


async def test_behind_pgbouncer_the_worker_leaves_the_session_setting_alone(
    database_url: str, modes: psycopg.AsyncConnection
) -> None:
    """A session SET would outlive the worker's transaction on a shared PgBouncer server connection."""
    await _run_one_job(Settings(database_url=database_url, pgbouncer=True))
    assert await _seen(modes) == [("INSERT", "on"), ("UPDATE", "on")]


async def test_cron_enqueues_wait_for_the_flush_on_the_workers_own_pool(
    settings: Settings, modes: psycopg.AsyncConnection
) -> None:
    registry = Registry()

    @registry.periodic("* * * * *")
    async def every_minute() -> None: ...

    start = datetime(2026, 1, 1, tzinfo=UTC)
    # the pool a worker builds for itself
    async with db.async_pool(settings, check=False, synchronous_commit=False) as pool:
        cron = Cron(pool=pool, statements=queries.statements(settings.schema), registry=registry)
        await cron.run_once(start)
        assert await cron.run_once(start + timedelta(minutes=1, seconds=1))
        async with pool.connection() as conn:
            cur = await conn.execute("SHOW synchronous_commit")
            assert await cur.fetchone() == ("off",)
    assert await _seen(modes) == [("INSERT", "on")]
