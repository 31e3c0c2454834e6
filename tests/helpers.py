"""Test helpers: run a worker for the length of a block, wait for a condition without bare sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import psycopg

from notifyq import Registry, Settings, Worker, WorkerSettings

# how often wait_until re-checks its condition; the deadline is what bounds a test
CHECK_EVERY = 0.02


@asynccontextmanager
async def running_worker(settings: Settings, registry: Registry, **config: Any) -> AsyncIterator[Worker]:
    """A worker started (LISTEN in place) before the block and stopped gracefully after it."""
    worker = Worker(settings, WorkerSettings(**config), registry=registry)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        try:
            yield worker
        finally:
            worker.stop()


async def wait_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool], *, seconds: float = 10.0
) -> None:
    """Re-check `condition` until it holds; fails the test after `seconds`."""
    with anyio.fail_after(seconds):
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await anyio.sleep(CHECK_EVERY)


async def job_status(conn: psycopg.AsyncConnection[Any], job_id: int) -> str | None:
    cur = await conn.execute("SELECT status::text FROM notifyq.jobs WHERE id = %s", (job_id,))
    row = await cur.fetchone()
    return None if row is None else str(row[0])


async def status_counts(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    cur = await conn.execute("SELECT status::text, count(*) FROM notifyq.jobs GROUP BY 1")
    return {str(s): int(n) for s, n in await cur.fetchall()}


async def hold_demand(conn: psycopg.AsyncConnection[Any], seconds: float = 3600) -> None:
    """Set the demand lease `seconds` ahead, as waiting workers keep it (migrations/0011): a
    waiter a test publishes by hand stays visible to producers however slow the test runs."""
    await conn.execute(
        "SELECT setval('notifyq.demand_until', (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
        " + %s::bigint)",
        (int(seconds * 1000),),
    )


def demand_lapsed(conn: psycopg.Connection[Any]) -> bool:
    """Whether the demand lease has run out: producers then notify nobody (migrations/0011)."""
    row = conn.execute(
        "SELECT pg_sequence_last_value('notifyq.demand_until') < extract(epoch FROM clock_timestamp()) * 1000"
    ).fetchone()
    return row == (True,)


async def expire_demand(conn: psycopg.AsyncConnection[Any]) -> None:
    """Let the demand lease run out, as when no worker has waited for a second (migrations/0011)."""
    await conn.execute("SELECT setval('notifyq.demand_until', 0)")


async def add_waiter(conn: psycopg.AsyncConnection[Any], *queues: str) -> None:
    """Publish demand on `queues` as an idle worker would, so inserts notify them."""
    await hold_demand(conn)
    worker_id = "00000000-0000-0000-0000-00000000000a"
    await conn.execute(
        "INSERT INTO notifyq.workers (id, host, pid, queues, concurrency, lock_key)"
        " VALUES (%s, 'test', 0, %s, 1, 0) ON CONFLICT DO NOTHING",
        (worker_id, list(queues)),
    )
    await conn.execute(
        "INSERT INTO notifyq.queue_waiters (queue, worker_id) SELECT unnest(%s::text[]), %s"
        " ON CONFLICT (queue, worker_id) DO UPDATE SET woken_at = NULL",
        (list(queues), worker_id),
    )
