"""Scenario 4: the cost of a claim-and-finish cycle as the backlog grows (10k, 100k, 1M queued).

The backlog is made with generate_series (fast) and vacuumed, as autovacuum would in service; the
bench process then claims 100 jobs and finishes them, many times, through notifyq's own statements.
It times stretches of 20 cycles and tops the backlog up between them (untimed), so the queue holds
about its nominal size throughout (200 cycles of 100 would otherwise empty a 10k backlog halfway
and flatter the small case); a measurement's figure is its median stretch. Every size is measured
once a round (ascending, then descending): a size's figure is the median of its rounds', and its
ratio to the smallest the median of each round's own.

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
STRETCH = 20  # cycles timed together


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


def run(url: str, *, sizes: list[int], cycles: int = CYCLES, rounds: int = 1) -> list[dict[str, Any]]:
    """Every size in each of `rounds` rounds (ascending, then descending, and so on), one row per
    size: its cycle cost the median of its rounds', and `vs_smallest` the median of each round's
    own ratio to the smallest size: a busy moment of the shared machine lands on one round's sizes
    alike, seconds apart (single passes gave 0.87x to 1.54x for 1M against 10k in one evening)."""
    by_size: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
    for round_no in range(rounds):
        for size in sizes if round_no % 2 == 0 else list(reversed(sizes)):
            by_size[size].append(_measure(url, size, cycles, f" (round {round_no + 1}/{rounds})"))
    reset(url)
    return summarize(sizes, by_size)


def summarize(sizes: list[int], by_size: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per size from its rounds (`_measure`'s, in round order)."""
    smallest = by_size[sizes[0]]
    results = []
    for size in sizes:
        runs = by_size[size]
        cost = statistics.median(r["cycle_ms"] for r in runs)
        ratios = [r["cycle_ms"] / s["cycle_ms"] for r, s in zip(runs, smallest, strict=True)]
        results.append({
            "queued": size,
            "cycle_ms": cost,
            "jobs_per_s": BATCH / cost * 1000,
            "vs_smallest": statistics.median(ratios),
            "vs_smallest_rounds": ratios,
            "rounds_ms": [r["cycle_ms"] for r in runs],
            "jobs": sum(r["jobs"] for r in runs),
            "exactly_once": all(r["exactly_once"] for r in runs),
        })  # fmt: skip
    return results


def _measure(url: str, size: int, cycles: int, label: str) -> dict[str, Any]:
    """One size once: a backlog of `size`, then `cycles` claim-and-finish cycles in timed stretches."""
    reset(url)
    log(f"backlog: {size:,} queued jobs, {cycles} claim+finish cycles of {BATCH}{label}")
    fill(url, size)
    stretches = []
    finished: list[int] = []
    for _ in range(max(1, cycles // STRETCH)):
        stretches.append(cycle_cost_ms(url, STRETCH, finished))
        fill(url, STRETCH * BATCH, vacuum=False)  # back to the nominal size, untimed
    return {
        "cycle_ms": statistics.median(stretches),
        "jobs": len(finished),
        # the backlog never runs short, so every claim took a full batch
        "exactly_once": ran_once(url, finished, len(stretches) * STRETCH * BATCH),
    }
