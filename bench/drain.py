"""Scenario 2: drain a backlog of no-op jobs with one and with two worker processes.

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


def run(url: str, *, jobs: int) -> list[dict[str, Any]]:
    results = []
    for processes in (1, 2):
        reset(url)
        with workers(url, processes, "--concurrency", CONCURRENCY):
            log(f"drain: {jobs:,} jobs, {processes} worker process(es), concurrency {CONCURRENCY}")
            committed = insert_backlog(url, jobs)
            wait(lambda: done_count(url) >= jobs, 600, "the backlog to drain")
            elapsed = time.perf_counter() - committed
        results.append(
            {
                "processes": processes,
                "jobs": jobs,
                "seconds": elapsed,
                "jobs_per_s": jobs / elapsed,
                "concurrency": int(CONCURRENCY),
                "exactly_once": exactly_once(url, jobs),
            }
        )
    return results
