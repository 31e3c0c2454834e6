"""Scenario 2: drain a backlog of no-op jobs with one and with two worker processes, in rounds.

The workers start first and idle; the backlog is inserted in one transaction, so its commit wakes
them all at once and the clock runs from that commit until the last job succeeded.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from bench.common import QUEUE, done_count, exactly_once, log, reset, wait, workers
from notifyq import JobSpec, Settings, SyncClient

CONCURRENCY = "500"
CHUNK = 10_000


def insert_backlog(url: str, jobs: int) -> float:
    """Insert `jobs` jobs in one transaction; returns the time of its commit."""
    with SyncClient(Settings(database_url=url)) as client, psycopg.connect(url) as conn:
        for start in range(0, jobs, CHUNK):
            specs = [
                JobSpec(task="noop", payload={"n": n}, queue=QUEUE)
                for n in range(start, min(jobs, start + CHUNK))
            ]
            client.enqueue_many(specs, conn=conn)
        conn.commit()
        return time.perf_counter()


def run(url: str, *, jobs: int, rounds: int) -> list[dict[str, Any]]:
    """Drain `jobs` with one and with two worker processes, in `rounds` interleaved rounds (the
    machine is shared: each round compares figures taken side by side; the order alternates)."""
    results = []
    for round_no in range(rounds):
        for processes in (1, 2) if round_no % 2 == 0 else (2, 1):
            log(f"drain: {jobs:,} jobs, {processes} worker process(es), concurrency {CONCURRENCY}"
                f" (round {round_no + 1}/{rounds})")  # fmt: skip
            results.append({"round": round_no + 1, **drain_once(url, jobs, processes)})
    return results


def drain_once(url: str, jobs: int, processes: int) -> dict[str, Any]:
    reset(url)
    with workers(url, processes, "--concurrency", CONCURRENCY):
        committed = insert_backlog(url, jobs)
        wait(lambda: done_count(url) >= jobs, 600, "the backlog to drain")
        elapsed = time.perf_counter() - committed
    return {
        "processes": processes,
        "jobs": jobs,
        "seconds": elapsed,
        "jobs_per_s": jobs / elapsed,
        "concurrency": int(CONCURRENCY),
        "exactly_once": exactly_once(url, jobs),
    }


def two_over_one(results: list[dict[str, Any]]) -> list[float]:
    """Each round's two-process rate over its one-process rate."""
    by_round: dict[int, dict[int, float]] = {}
    for r in results:
        by_round.setdefault(r.get("round", 1), {})[r["processes"]] = r["jobs_per_s"]
    return [two[2] / two[1] for _, two in sorted(by_round.items()) if {1, 2} <= set(two)]


def best_by_processes(results: list[dict[str, Any]]) -> dict[int, float]:
    """The best rate of each process count, over the rounds."""
    best: dict[int, float] = {}
    for r in results:
        best[r["processes"]] = max(best.get(r["processes"], 0.0), r["jobs_per_s"])
    return dict(sorted(best.items()))
