"""Scenario 1: enqueue-to-start latency at fixed offered rates, LISTEN/NOTIFY against polling.

Producers enqueue one job per transaction at a fixed rate (each job has its slot in time, so a slow
enqueue does not lower the offered rate); the payload carries the wall clock read just before the
enqueue call, and the handler writes how long ago that was when it starts (bench/tasks.py; same
machine, same clock), so latency covers the insert, the commit, the wake-up, the claim with its
commit, and the hand-over to the handler. (The row's started_at, set when the claim statement
begins, would leave out the claim's own commit.)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench.common import QUEUE, done_count, exactly_once, log, percentiles, reset, wait, workers
from bench.tasks import STARTS_ENV
from notifyq import Client, Settings

# the polling modes are plain polling: without the claim linger, with which a polling worker also
# streams jobs that arrive faster than every 10 ms (STREAM_PATIENCE lingers) and so stops polling
MODES: dict[str, tuple[str, ...]] = {
    "listen/notify": ("--poll-interval", "5"),
    "poll 1s": ("--no-listen", "--poll-interval", "1", "--claim-linger", "0"),
    "poll 100ms": ("--no-listen", "--poll-interval", "0.1", "--claim-linger", "0"),
}
PRODUCERS = 8


async def produce(url: str, rate: float, seconds: float, calls_ms: list[float] | None = None) -> float:
    """Enqueue at `rate` for `seconds` from PRODUCERS concurrent producers; returns the achieved rate.

    `calls_ms` receives how long each enqueue call took: the producer's own part (its insert and
    commit) of the enqueue-to-start latency, which no worker can make shorter.
    """
    total = int(rate * seconds)
    settings = Settings(database_url=url, pool_min_size=PRODUCERS, pool_max_size=PRODUCERS)
    calls = [] if calls_ms is None else calls_ms
    async with Client(settings) as client:
        start = anyio.current_time() + 0.1

        async def producer(k: int) -> None:
            for i in range(k, total, PRODUCERS):
                await anyio.sleep_until(start + i / rate)
                sent_at = time.time()
                await client.enqueue("noop", {"sent_at": sent_at}, queue=QUEUE)
                calls.append((time.time() - sent_at) * 1000)

        async with anyio.create_task_group() as tg:
            for k in range(PRODUCERS):
                tg.start_soon(producer, k)
        elapsed = anyio.current_time() - start
    return total / elapsed


def take_latencies_ms(folder: Path) -> list[float]:
    """The handlers' enqueue-to-start figures written so far, emptying the files for the next rate."""
    values = []
    for path in folder.glob("starts-*.txt"):
        values += [float(line) * 1000 for line in path.read_text().split()]
        path.write_text("")  # the worker appends (O_APPEND), so its next line lands at the start
    return sorted(values)


def run(url: str, *, rates: list[float], seconds: float) -> list[dict[str, Any]]:
    results = []
    for mode, args in MODES.items():
        with (
            tempfile.TemporaryDirectory(prefix="notifyq-bench-") as folder,
            workers(url, 1, "--concurrency", "100", *args, env={STARTS_ENV: folder}),
        ):
            for rate in rates:
                reset(url)
                log(f"latency: {mode} at {rate:g} jobs/s for {seconds:g}s")
                calls: list[float] = []
                achieved = anyio.run(produce, url, rate, seconds, calls)
                total = int(rate * seconds)
                wait(lambda t=total: done_count(url) >= t, 60, "jobs to finish")
                values = take_latencies_ms(Path(folder))
                results.append(
                    {
                        "mode": mode,
                        "rate": rate,
                        "achieved_rate": achieved,
                        "jobs": total,
                        # one handler start per job, too
                        "exactly_once": exactly_once(url, total) and len(values) == total,
                        "latency_ms": percentiles(values),
                        "enqueue_call_ms": percentiles(sorted(calls)),
                        "samples_ms": values,
                    }
                )
    return results
