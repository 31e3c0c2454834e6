"""Scenario 5: what each job costs the database: transactions (each notifyq statement is one),
WAL bytes, and notifications (on the queue's channel and the workers' own, which carry hand-overs),
for jobs enqueued one per transaction and run by a worker."""

from __future__ import annotations

from typing import Any

import anyio
import psycopg

from bench.common import QUEUE, done_count, exactly_once, log, reset, scalar, wait, workers
from bench.latency import produce
from notifyq import names, queries


def _counters(url: str) -> tuple[int, int]:
    xacts = int(scalar(url, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))
    wal = int(scalar(url, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
    return xacts, wal


async def _count_notifications(url: str, stop: anyio.Event, seen: dict[str, int]) -> None:
    queue_channel = names.queue_channel("notifyq", QUEUE)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        workers = await (await conn.execute("SELECT id FROM notifyq.workers")).fetchall()
        for channel in [queue_channel, *(names.hand_over_channel("notifyq", w) for (w,) in workers)]:
            await queries.fetch_all(conn, queries.channel_listen(channel))
        while not stop.is_set():
            async for n in conn.notifies(timeout=0.2):
                seen["queue" if n.channel == queue_channel else "hand_over"] += 1


async def _measured(url: str, rate: float, seconds: float) -> dict[str, int]:
    seen = {"queue": 0, "hand_over": 0}
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_count_notifications, url, stop, seen)
        await anyio.sleep(0.3)
        await produce(url, rate, seconds)
        await anyio.sleep(0.5)
        stop.set()
    return seen


def run(url: str, *, rate: float, seconds: float) -> dict[str, Any]:
    reset(url)
    jobs = int(rate * seconds)
    with workers(url, 1, "--concurrency", "100"):
        log(f"cost: {jobs} jobs at {rate:g}/s")
        xacts0, wal0 = _counters(url)
        notifications = anyio.run(_measured, url, rate, seconds)
        wait(lambda: done_count(url) >= jobs, 60, "jobs to finish")
        xacts1, wal1 = _counters(url)
    return {
        "jobs": jobs,
        "transactions_per_job": (xacts1 - xacts0) / jobs,
        "wal_bytes_per_job": (wal1 - wal0) / jobs,
        "notifications_per_job": sum(notifications.values()) / jobs,
        "hand_overs_per_job": notifications["hand_over"] / jobs,
        "exactly_once": exactly_once(url, jobs),
    }
