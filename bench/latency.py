"""Scenario 1: enqueue-to-start latency at fixed offered rates, LISTEN/NOTIFY against polling.

Producers enqueue one job per transaction at a fixed rate (each job has its slot in time, so a slow
enqueue does not lower the offered rate); the payload carries the wall clock read just before the
enqueue call, and the handler writes how long ago that was when it starts (bench/tasks.py; same
machine, same clock), so latency covers the insert, the commit, the wake-up, the claim with its
commit, and the hand-over to the handler. (The row's started_at, set when the claim statement
begins, would leave out the claim's own commit.)
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
from psycopg_pool import AsyncConnectionPool

from bench.common import (
    QUEUE,
    done_count,
    exactly_once,
    execute,
    log,
    percentiles,
    reset,
    settle,
    wait,
    workers,
)
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
# the mode the targets judge: measured in rounds, each rate beside its floor
PAIRED_MODE = "listen/notify"
# counts that add up over rounds (the rest of a round's numbers are figures: their median)
SUMMED = ("jobs", "warmup_jobs")
# every rate (latency and floor) begins with this much load that is run but left out of the
# percentiles (its own are in the JSON; latency's jobs are checked exactly-once with the rest): a
# new pool's first calls (each backend's first insert loads the catalogs and compiles the trigger's
# plpgsql; psycopg prepares a statement after its first runs) took 10-45 ms for the first 10-50
# jobs, so at 1,000 jobs a rate the p99 measured start-up (2026-12-03, 200 jobs/s: p99 8.63 ms
# with them, 5.38 without; 1,000 jobs/s: 12.06 and 8.34)
WARMUP_SECONDS = 1.0
FLOOR_TABLE = (
    "CREATE TABLE bench_floor (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload jsonb NOT NULL)"
)
FLOOR_INSERT = "INSERT INTO bench_floor (payload) VALUES (%s::jsonb)"


def warmup_jobs(rate: float) -> int:
    """How many jobs of a rate are its warm-up: numbers below this are not measured."""
    return int(rate * WARMUP_SECONDS)


def measured(by_job: dict[int, float], rate: float) -> list[float]:
    """The values of the jobs after the warm-up, sorted."""
    warm = warmup_jobs(rate)
    return sorted(v for n, v in by_job.items() if n >= warm)


def warmup(by_job: dict[int, float], rate: float) -> list[float]:
    """The values of the warm-up's jobs, sorted."""
    warm = warmup_jobs(rate)
    return sorted(v for n, v in by_job.items() if n < warm)


async def paced(
    rate: float, seconds: float, call: Callable[[int], Awaitable[None]]
) -> tuple[float, dict[int, float]]:
    """Call `call(n)` for n < rate * seconds from PRODUCERS concurrent producers, job n in its slot
    `start + n / rate` (a slow call does not lower the offered rate); returns the achieved rate and
    how long each call took (ms). `seconds` includes any warm-up: the caller leaves it out."""
    total = int(rate * seconds)
    calls: dict[int, float] = {}
    start = anyio.current_time() + 0.1

    async def producer(k: int) -> None:
        for n in range(k, total, PRODUCERS):
            await anyio.sleep_until(start + n / rate)
            began = time.perf_counter()
            await call(n)
            calls[n] = (time.perf_counter() - began) * 1000

    async with anyio.create_task_group() as tg:
        for k in range(PRODUCERS):
            tg.start_soon(producer, k)
    return total / (anyio.current_time() - start), calls


async def produce(url: str, rate: float, seconds: float, calls_ms: dict[int, float] | None = None) -> float:
    """Enqueue at `rate` for `seconds` from PRODUCERS concurrent producers; returns the achieved rate.

    Job `n` carries `n` and `sent_at` in its payload; `calls_ms[n]` receives how long its enqueue
    call took: the producer's own part (its insert and commit) of the enqueue-to-start latency,
    which no worker can make shorter.
    """
    settings = Settings(database_url=url, pool_min_size=PRODUCERS, pool_max_size=PRODUCERS)
    async with Client(settings) as client:

        async def enqueue(n: int) -> None:
            await client.enqueue("noop", {"sent_at": time.time(), "n": n}, queue=QUEUE)

        achieved, calls = await paced(rate, seconds, enqueue)
    if calls_ms is not None:
        calls_ms.update(calls)
    return achieved


async def bare_inserts(url: str, rate: float, seconds: float) -> dict[int, float]:
    """The floor under any queue's enqueue call on this machine: the same producers, pool and pacing,
    each call one row of a table with a primary key, a jsonb and nothing else, in its own transaction
    (fsync'd commit)."""
    options: dict[str, Any] = {"autocommit": True}
    async with AsyncConnectionPool(
        url, min_size=PRODUCERS, max_size=PRODUCERS, kwargs=options, open=False
    ) as pool:
        await pool.wait()  # as the Client opens its pool: every connection up before the first call

        async def insert(n: int) -> None:
            async with pool.connection() as conn:
                await conn.execute(FLOOR_INSERT, (orjson.dumps({"sent_at": time.time(), "n": n}).decode(),))

        _, calls = await paced(rate, seconds, insert)
    return calls


@contextmanager
def floor_table(url: str) -> Iterator[None]:
    execute(url, FLOOR_TABLE)
    try:
        yield
    finally:
        execute(url, "DROP TABLE bench_floor")


def floor_rate(url: str, rate: float, seconds: float) -> dict[str, Any]:
    """Bare durable inserts at one rate (inside `floor_table`): what the `call` columns compare to."""
    log(f"latency: floor (bare inserts) at {rate:g} jobs/s, {seconds:g}s after {WARMUP_SECONDS:g}s")
    settle(url)
    calls = anyio.run(bare_inserts, url, rate, WARMUP_SECONDS + seconds)
    return {
        "rate": rate,
        "call_ms": percentiles(measured(calls, rate)),
        "warmup_call_ms": percentiles(warmup(calls, rate)),
    }


def floor(url: str, *, rates: list[float], seconds: float) -> list[dict[str, Any]]:
    """The floor alone (`--only floor`), each rate once, with no worker running."""
    with floor_table(url):
        return [floor_rate(url, rate, seconds) for rate in rates]


def take_latencies_ms(folder: Path) -> list[tuple[int, float]]:
    """The handlers' (job number, enqueue-to-start) lines so far, emptying the files for the next rate."""
    values: list[tuple[int, float]] = []
    for path in folder.glob("starts-*.txt"):
        for line in path.read_text().splitlines():
            n, waited = line.split()
            values.append((int(n), float(waited) * 1000))
        path.write_text("")  # the worker appends (O_APPEND), so its next line lands at the start
    return values


def measure(url: str, folder: Path, rate: float, seconds: float) -> dict[str, Any]:
    """One offered rate against the running worker: latencies, the enqueue calls, what came after.
    It starts from a checkpoint: none of the last rate's writes, and no timed checkpoint, in it."""
    reset(url)
    settle(url)
    calls: dict[int, float] = {}
    achieved = anyio.run(produce, url, rate, WARMUP_SECONDS + seconds, calls)
    total = int(rate * (WARMUP_SECONDS + seconds))
    wait(lambda: done_count(url) >= total, 60, "jobs to finish")
    lines = take_latencies_ms(folder)
    starts = dict(lines)
    values = measured(starts, rate)
    # after the call: from the enqueue call's return to the handler's start (notification, claim,
    # hand-over), the worker's own part; negative when the worker started before the call returned
    after = measured({n: starts[n] - calls[n] for n in starts if n in calls}, rate)
    return {
        "rate": rate,
        "achieved_rate": achieved,  # warm-up included, as in `jobs`
        "jobs": total,
        "warmup_jobs": warmup_jobs(rate),  # of `jobs`; the percentiles are of the others
        # every job, the warm-up's too; one handler start per job, too
        "exactly_once": exactly_once(url, total) and len(lines) == len(starts) == total,
        "latency_ms": percentiles(values),
        "warmup_latency_ms": percentiles(warmup(starts, rate)),
        "warmup_call_ms": percentiles(warmup(calls, rate)),
        "enqueue_call_ms": percentiles(measured(calls, rate)),
        "after_call_ms": percentiles(after),
        "samples_ms": values,
        "after_samples_ms": after,
    }


def run(
    url: str, *, rates: list[float], seconds: float, rounds: int = 1
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every mode at every rate, and the floor beside listen/notify: (latency, floor).

    Listen/notify, whose figures the targets judge, runs `rounds` rounds; in each, every rate is
    measured right beside its floor (which goes first alternates by round; the worker is up but has
    nothing to do during the floor), so a busy moment of the machine lands on both. Each figure is
    the median of the rounds' own (`of_rounds`); every round is in the JSON. Polling, the
    comparison, runs once.
    """
    results: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    for mode, args in MODES.items():
        with (
            tempfile.TemporaryDirectory(prefix="notifyq-bench-") as folder,
            workers(url, 1, "--concurrency", "100", *args, env={STARTS_ENV: folder}),
        ):
            if mode == PAIRED_MODE:
                runs, floor_runs = _paired_rounds(url, Path(folder), rates, seconds, rounds)
                results += [{"mode": mode, **of_rounds(runs[rate])} for rate in rates]
                floors = [{"rate": rate, **of_rounds(floor_runs[rate])} for rate in rates]
            else:
                for rate in rates:
                    results.append({"mode": mode, **_measure_logged(url, Path(folder), mode, rate, seconds)})
    return results, floors


def _paired_rounds(
    url: str, folder: Path, rates: list[float], seconds: float, rounds: int
) -> tuple[dict[float, list[dict[str, Any]]], dict[float, list[dict[str, Any]]]]:
    """`rounds` rounds of every rate, each measured beside its floor: (runs, floors) by rate."""
    runs: dict[float, list[dict[str, Any]]] = {rate: [] for rate in rates}
    floors: dict[float, list[dict[str, Any]]] = {rate: [] for rate in rates}
    with floor_table(url):
        for round_no in range(rounds):
            for rate in rates:
                if round_no % 2:
                    runs[rate].append(_measure_logged(url, folder, PAIRED_MODE, rate, seconds))
                floors[rate].append(floor_rate(url, rate, seconds))
                if not round_no % 2:
                    runs[rate].append(_measure_logged(url, folder, PAIRED_MODE, rate, seconds))
    return runs, floors


def _measure_logged(url: str, folder: Path, mode: str, rate: float, seconds: float) -> dict[str, Any]:
    log(f"latency: {mode} at {rate:g} jobs/s for {seconds:g}s after {WARMUP_SECONDS:g}s")
    return measure(url, folder, rate, seconds)


def of_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One rate's rounds as one result: each percentile the median of the rounds' own (a busy
    moment of the machine moves one round, not the figure), but the max the largest of all; counts
    summed; exactly once if every round was; the per-job samples pooled (for the plot). `rounds`
    keeps each round's own figures."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    merged: dict[str, Any] = {"rate": first["rate"]}
    for key, value in first.items():
        if key in ("rate", "rounds"):
            continue
        if isinstance(value, dict):  # percentiles; the worst of all rounds stays the worst
            merged[key] = {p: _combine(p, [r[key][p] for r in runs]) for p in value}
        elif isinstance(value, list):  # per-job samples
            merged[key] = sorted(v for r in runs for v in r[key])
        elif isinstance(value, bool):
            merged[key] = all(r[key] for r in runs)
        elif key in SUMMED:
            merged[key] = sum(r[key] for r in runs)
        else:
            merged[key] = statistics.median(r[key] for r in runs)
    merged["rounds"] = [{k: v for k, v in r.items() if not isinstance(v, list)} for r in runs]
    return merged


def _combine(percentile: str, values: list[float]) -> float:
    return max(values) if percentile == "max" else statistics.median(values)
