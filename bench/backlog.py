"""Scenario 4: the cost of a claim-and-finish cycle as the backlog grows (10k, 100k, 1M queued).

The backlog is made with generate_series (fast) and vacuumed, as autovacuum would in service; the
bench process then claims 100 jobs and finishes them, many times, through notifyq's own statements.
It measures in rounds of 20 cycles and tops the backlog up between rounds (untimed), so the queue
holds about its nominal size throughout (200 cycles of 100 would otherwise empty a 10k backlog
halfway and flatter the small case); the figure is the median round.

Exactly once, here: no job is claimed twice across the cycles of a size, each claimed job is
finished by its own cycle, and what succeeded is just those jobs, on their first attempt.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import psycopg

from bench.common import QUEUE, execute, log, reset
from notifyq import queries
from notifyq.models import JobResult, Outcome

BATCH = 100
CYCLES = 200
ROUND = 20  # cycles per timed round


def fill(url: str, jobs: int, *, vacuum: bool = True) -> None:
    execute(
        url,
        "INSERT INTO notifyq.jobs (queue, task, payload)"
        f" SELECT '{QUEUE}', 'noop', jsonb_build_object('n', i) FROM generate_series(1, {jobs}) i",
    )
    if vacuum:
        execute(url, "VACUUM ANALYZE notifyq.jobs")


def cycle_cost_ms(url: str, cycles: int, finished: list[int]) -> float:
    """The mean cost of a claim-and-finish cycle; appends the ids each finish wrote to `finished`
    (a job whose finish wrote nothing is missing from it)."""
    st = queries.statements("notifyq")
    worker = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.perf_counter()
        for _ in range(cycles):
            claimed = queries.fetch_all_sync(
                conn, queries.job_claim_batch(st, worker=worker, queues=[QUEUE], limit=BATCH, lease=30)
            )
            results = [JobResult(job_id=j.id, attempt=j.attempts, outcome=Outcome.SUCCEEDED) for j in claimed]
            finish = queries.job_finish_many(st, worker=worker, results=results)
            finished.extend(queries.fetch_all_sync(conn, finish))
        return (time.perf_counter() - start) / cycles * 1000


def ran_once(url: str, finished: list[int], expected: int) -> bool:
    """`expected` jobs finished, none twice, and every job out of the queue is one of them,
    succeeded on its first attempt."""
    query = (
        "SELECT count(*) FILTER (WHERE status = 'succeeded' AND attempts = 1),"
        " count(*) FILTER (WHERE status <> 'queued') FROM notifyq.jobs"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    return len(set(finished)) == len(finished) == expected and row == (expected, expected)


def run(url: str, *, sizes: list[int], cycles: int = CYCLES) -> list[dict[str, Any]]:
    results = []
    for size in sizes:
        reset(url)
        log(f"backlog: {size:,} queued jobs, {cycles} claim+finish cycles of {BATCH}")
        fill(url, size)
        rounds = []
        finished: list[int] = []
        for _ in range(max(1, cycles // ROUND)):
            rounds.append(cycle_cost_ms(url, ROUND, finished))
            fill(url, ROUND * BATCH, vacuum=False)  # back to the nominal size, untimed
        cost = statistics.median(rounds)
        results.append({
            "queued": size,
            "cycle_ms": cost,
            "jobs_per_s": BATCH / cost * 1000,
            "jobs": len(finished),
            # the backlog never runs short, so every claim took a full batch
            "exactly_once": ran_once(url, finished, len(rounds) * ROUND * BATCH),
        })  # fmt: skip
    reset(url)
    return results
