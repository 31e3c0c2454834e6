"""Scenario 3: enqueue throughput, single-job transactions at 1 and 8 producers, with the NOTIFY
trigger and without it (the ratio is the point: notifying commits serialize on a database-wide
lock), with a worker running; and bulk enqueue_many.

The baseline of the target is the same worker with notifications off: the trigger disabled, the
worker polling every 100 ms instead of listening, everything else alike (it claims the same
batches and lingers the same while jobs stream in), so both runs do the same work on the same two
cores and the ratio is what notifying costs. A second baseline, informational, leaves the worker
idle (its poll is longer than the measurement): the producers then have the machine to themselves,
so that ratio also counts the cost of running the jobs.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from bench.common import QUEUE, done_count, execute, log, reset, settle, wait, workers
from notifyq import Client, JobSpec, Settings, SyncClient, names

BULK_BATCH = 10_000


async def single_job_rate(url: str, producers: int, seconds: float) -> tuple[float, int]:
    settings = Settings(database_url=url, pool_min_size=producers, pool_max_size=producers)
    count = 0
    async with Client(settings) as client:
        deadline = anyio.current_time() + seconds

        async def producer() -> None:
            nonlocal count
            while anyio.current_time() < deadline:
                await client.enqueue("noop", {"sent_at": time.time()}, queue=QUEUE)
                count += 1

        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(producers):
                tg.start_soon(producer)
        elapsed = anyio.current_time() - start
    return count / elapsed, count


def bulk_rate(url: str, jobs: int) -> float:
    with SyncClient(Settings(database_url=url)) as client:
        specs = [JobSpec(task="noop", payload={"n": n}, queue=QUEUE) for n in range(BULK_BATCH)]
        start = time.perf_counter()
        for _ in range(jobs // BULK_BATCH):
            client.enqueue_many(specs)
        return (jobs // BULK_BATCH) * BULK_BATCH / (time.perf_counter() - start)


SAME_WORKER = "no notify, same worker polling 100 ms"
MODES = {
    # mode: (trigger on, worker arguments)
    "notify": (True, ()),
    SAME_WORKER: (False, ("--no-listen", "--poll-interval", "0.1")),
    # a poll longer than the measurement: the worker really stays idle until the catch-up
    "no notify, idle worker": (False, ("--poll-interval", "600")),
}


def run(url: str, *, seconds: float, bulk_jobs: int, rounds: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {}
    # interleaved rounds: the machine is shared, so compare figures taken side by side
    for round_no in range(rounds):
        for mode, (notify, args) in MODES.items():
            trigger = "ENABLE" if notify else "DISABLE"
            execute(url, f"ALTER TABLE notifyq.jobs {trigger} TRIGGER jobs_notify")
            with workers(url, 1, "--concurrency", "100", *args):
                for producers in (1, 8):
                    reset(url)
                    key = f"{producers} producers, {mode}"
                    log(f"enqueue: {key} (round {round_no + 1}/{rounds})")
                    rate, count = anyio.run(single_job_rate, url, producers, seconds)
                    rates.setdefault(key, []).append(rate)
                    # let the worker finish before the reset; the idle one is told to by hand
                    execute(url, f"SELECT pg_notify('{names.queue_channel('notifyq', QUEUE)}', '')")
                    wait(lambda c=count: done_count(url) >= c, 120, "the workers to catch up")
    execute(url, "ALTER TABLE notifyq.jobs ENABLE TRIGGER jobs_notify")
    reset(url)
    settle(url)
    log(f"enqueue: bulk enqueue_many of {bulk_jobs:,} jobs in batches of {BULK_BATCH:,}")
    bulk = bulk_rate(url, bulk_jobs)
    reset(url)
    best = {k: max(v) for k, v in rates.items()}
    ratios = {
        f"{baseline}, {p} producer{'s' if p > 1 else ''}": best[f"{p} producers, notify"]
        / best[f"{p} producers, {baseline}"]
        for baseline in list(MODES)[1:]
        for p in (1, 8)
    }
    # each round's own ratio at 8 producers: its modes ran side by side, minutes apart from the others
    per_round = [
        n / b for n, b in zip(rates["8 producers, notify"], rates[f"8 producers, {SAME_WORKER}"], strict=True)
    ]
    return {
        "single_job_rates": rates,
        "notify_ratio_8_rounds": per_round,
        "best": best,
        "notify_ratios": ratios,
        "notify_ratio_1": ratios[f"{SAME_WORKER}, 1 producer"],
        "notify_ratio_8": ratios[f"{SAME_WORKER}, 8 producers"],
        "bulk_jobs_per_s": bulk,
    }
