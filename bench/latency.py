"""Scenario 1: enqueue-to-start latency at fixed offered rates, LISTEN/NOTIFY against polling.

Producers enqueue one job per transaction at a fixed rate (each job has its slot in time, so a slow
enqueue does not lower the offered rate); the payload carries the wall clock read just before the
enqueue call, and the worker's claim records started_at on the database's clock (same machine),
so latency = started_at - sent_at covers the insert, the commit, the wake-up and the claim.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import psycopg

from bench.common import QUEUE, done_count, exactly_once, log, percentiles, reset, wait, workers
from notifyq import Client, Settings

MODES: dict[str, tuple[str, ...]] = {
    "listen/notify": ("--poll-interval", "5"),
    "poll 1s": ("--no-listen", "--poll-interval", "1"),
    "poll 100ms": ("--no-listen", "--poll-interval", "0.1"),
}
PRODUCERS = 8


async def produce(url: str, rate: float, seconds: float) -> float:
    """Enqueue at `rate` for `seconds` from PRODUCERS concurrent producers; returns the achieved rate."""
    total = int(rate * seconds)
    settings = Settings(database_url=url, pool_min_size=PRODUCERS, pool_max_size=PRODUCERS)
    async with Client(settings) as client:
        start = anyio.current_time() + 0.1

        async def producer(k: int) -> None:
            for i in range(k, total, PRODUCERS):
                await anyio.sleep_until(start + i / rate)
                await client.enqueue("noop", {"sent_at": time.time()}, queue=QUEUE)

        async with anyio.create_task_group() as tg:
            for k in range(PRODUCERS):
                tg.start_soon(producer, k)
        elapsed = anyio.current_time() - start
    return total / elapsed


def latencies_ms(url: str) -> list[float]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT (extract(epoch FROM started_at) - (payload->>'sent_at')::float8) * 1000 FROM notifyq.jobs"
        ).fetchall()
    return sorted(float(r[0]) for r in rows)


def run(url: str, *, rates: list[float], seconds: float) -> list[dict[str, Any]]:
    results = []
    for mode, args in MODES.items():
        with workers(url, 1, "--concurrency", "100", *args):
            for rate in rates:
                reset(url)
                log(f"latency: {mode} at {rate:g} jobs/s for {seconds:g}s")
                achieved = anyio.run(produce, url, rate, seconds)
                total = int(rate * seconds)
                wait(lambda t=total: done_count(url) >= t, 60, "jobs to finish")
                values = latencies_ms(url)
                results.append(
                    {
                        "mode": mode,
                        "rate": rate,
                        "achieved_rate": achieved,
                        "jobs": total,
                        "exactly_once": exactly_once(url, total),
                        "latency_ms": percentiles(values),
                        "samples_ms": values,
                    }
                )
    return results
