"""Scenario 3: enqueue throughput, single-job transactions at 1 and 8 producers, with the NOTIFY
trigger and without it (the ratio is the point: notifying commits serialize on a database-wide
lock), with a worker running; and bulk enqueue_many.

The baseline of the target is the same worker with notifications off: the trigger disabled, the
worker polling every 100 ms instead of listening, everything else alike (it claims the same
batches and lingers the same while jobs stream in), so both runs do the same work on the same two
cores and the ratio is what notifying costs. A second baseline, informational, has no worker on
its queue: the producers then have the machine to themselves, so that ratio also counts the cost
of running the jobs.

Both workers run through the whole scenario, each on a queue of its own, so a run starts seconds
after the one before instead of waiting for a worker to start: each mode's producers enqueue to
its queue, and the worker of the other waits meanwhile (the listening one asleep, renewing its
demand lease four times a second; the polling one claiming nothing ten times a second). In each
round the modes of one producer count run back to back, the first of them alternating by round,
and each run starts from a checkpoint (so none pays for another's writes). A ratio is the median
of each round's own: on a shared machine one round's rates can move by a fifth, and the ratio of
two best-of rates compares each with its luckiest round (it is reported too).

Exactly once: every job of a run has run before the next run starts (the jobs of the run without
a worker are moved to the polling worker's queue), and the bulk-enqueued jobs too, by a worker
started after the measurement; each run's jobs must all have succeeded, on their first attempt.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio

from bench.common import QUEUE, done_count, exactly_once, execute, log, reset, settle, wait, workers
from notifyq import Client, JobSpec, Settings, SyncClient

BULK_BATCH = 10_000


async def single_job_rate(url: str, producers: int, seconds: float, queue: str = QUEUE) -> tuple[float, int]:
    settings = Settings(database_url=url, pool_min_size=producers, pool_max_size=producers)
    count = 0
    async with Client(settings) as client:
        deadline = anyio.current_time() + seconds

        async def producer() -> None:
            nonlocal count
            while anyio.current_time() < deadline:
                await client.enqueue("noop", {"sent_at": time.time()}, queue=queue)
                count += 1

        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(producers):
                tg.start_soon(producer)
        elapsed = anyio.current_time() - start
    return count / elapsed, count


def bulk_rate(url: str, jobs: int) -> tuple[float, int]:
    """enqueue_many in batches of BULK_BATCH: jobs a second, and how many went in."""
    with SyncClient(Settings(database_url=url)) as client:
        specs = [JobSpec(task="noop", payload={"n": n}, queue=QUEUE) for n in range(BULK_BATCH)]
        start = time.perf_counter()
        for _ in range(jobs // BULK_BATCH):
            client.enqueue_many(specs)
        inserted = (jobs // BULK_BATCH) * BULK_BATCH
        return inserted / (time.perf_counter() - start), inserted


SAME_WORKER = "no notify, same worker polling 100 ms"
IDLE = "no notify, no worker"
POLL_QUEUE = f"{QUEUE}-poll"
MODES = {
    # mode: (trigger on, the queue its producers enqueue to)
    "notify": (True, QUEUE),  # the listening worker's
    SAME_WORKER: (False, POLL_QUEUE),  # the polling worker's
    IDLE: (False, f"{QUEUE}-idle"),  # nobody's until the run ends, then the polling worker's
}
LISTENING = ("--concurrency", "100")
POLLING = ("--concurrency", "100", "--no-listen", "--poll-interval", "0.1")


def run(url: str, *, seconds: float, bulk_jobs: int, rounds: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {}
    once: list[bool] = []
    with workers(url, 1, *LISTENING), workers(url, 1, *POLLING, queue=POLL_QUEUE):
        for round_no in range(rounds):
            for producers, mode in run_order(round_no):
                log(f"enqueue: {producers} producers, {mode} (round {round_no + 1}/{rounds})")
                rate, ran_once = _single_job_run(url, mode, producers, seconds)
                rates.setdefault(f"{producers} producers, {mode}", []).append(rate)
                once.append(ran_once)
    execute(url, "ALTER TABLE notifyq.jobs ENABLE TRIGGER jobs_notify")
    reset(url)
    settle(url)
    log(f"enqueue: bulk enqueue_many of {bulk_jobs:,} jobs in batches of {BULK_BATCH:,}")
    bulk, inserted = bulk_rate(url, bulk_jobs)
    with workers(url, 1, "--concurrency", "500"):  # a worker claims at start: no wake-up needed
        wait(lambda: done_count(url) >= inserted, 300, "the bulk-enqueued jobs to run")
    once.append(exactly_once(url, inserted))
    reset(url)
    return {**summarize(rates), "bulk_jobs_per_s": bulk, "exactly_once": all(once)}


def run_order(round_no: int) -> list[tuple[int, str]]:
    """A round's runs: (producers, mode). The modes of one producer count run back to back, so a
    ratio compares runs seconds apart; which mode goes first alternates by round, so neither
    always gets the moment after the other (its worker's start, its catch-up)."""
    modes = list(MODES) if round_no % 2 == 0 else list(reversed(MODES))
    return [(producers, mode) for producers in (1, 8) for mode in modes]


def _single_job_run(url: str, mode: str, producers: int, seconds: float) -> tuple[float, bool]:
    """One mode's run: its trigger setting, a checkpoint, `seconds` of single-job enqueues to its
    queue; then every job must run exactly once. Returns (jobs/s, exactly once)."""
    notify, queue = MODES[mode]
    execute(url, f"ALTER TABLE notifyq.jobs {'ENABLE' if notify else 'DISABLE'} TRIGGER jobs_notify")
    reset(url)
    settle(url)
    rate, count = anyio.run(single_job_rate, url, producers, seconds, queue)
    if mode == IDLE:  # its jobs go to a worker only now, so its producers ran alone
        execute(url, f"UPDATE notifyq.jobs SET queue = '{POLL_QUEUE}' WHERE queue = '{queue}'")
    wait(lambda: done_count(url) >= count, 120, "the workers to catch up")
    return rate, exactly_once(url, count)


def summarize(rates: dict[str, list[float]]) -> dict[str, Any]:
    """The best rate of each case, and each notify ratio as the median of each round's own (its
    two runs seconds apart, minutes apart from the other rounds')."""
    best = {k: max(v) for k, v in rates.items()}
    paired = {
        f"{baseline}, {p} producer{'s' if p > 1 else ''}": _ratios(
            rates[f"{p} producers, notify"], rates[f"{p} producers, {baseline}"]
        )
        for baseline in list(MODES)[1:]
        for p in (1, 8)
    }
    ratios = {k: statistics.median(v) for k, v in paired.items()}
    return {
        "single_job_rates": rates,
        "best": best,
        "notify_ratio_rounds": paired,
        "notify_ratios": ratios,
        "notify_ratio_1": ratios[f"{SAME_WORKER}, 1 producer"],
        "notify_ratio_8": ratios[f"{SAME_WORKER}, 8 producers"],
        "notify_ratio_8_rounds": paired[f"{SAME_WORKER}, 8 producers"],
        "notify_ratio_8_of_best": best["8 producers, notify"] / best[f"8 producers, {SAME_WORKER}"],
    }


def _ratios(notify: list[float], baseline: list[float]) -> list[float]:
    return [n / b for n, b in zip(notify, baseline, strict=True)]
