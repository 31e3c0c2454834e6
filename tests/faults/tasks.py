"""Tasks for the fault runs: each execution is recorded, so duplicates are counted exactly."""

from __future__ import annotations

import os
import random
import time

import anyio
import psycopg

import notifyq

_DATABASE_URL = os.environ.get("DATABASE_URL", "")


@notifyq.task(queue="faults", max_attempts=10)
async def record(payload: dict[str, int]) -> None:
    """Records the run, then works a little, so kills often land while jobs are running."""
    async with await psycopg.AsyncConnection.connect(_DATABASE_URL, autocommit=True) as conn:
        await conn.execute("INSERT INTO fault_runs (n, pid) VALUES (%s, %s)", (payload["n"], os.getpid()))
    await anyio.sleep(random.uniform(0, 0.05))


@notifyq.task(queue="faults", max_attempts=10)
async def block_loop(payload: dict[str, int]) -> None:
    """Blocks the worker's event loop longer than its lease, once per job (the first run)."""
    with psycopg.connect(_DATABASE_URL, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO fault_runs (n, pid) VALUES (%s, %s)"
            " RETURNING (SELECT count(*) FROM fault_runs WHERE n = %s)",
            (payload["n"], os.getpid(), payload["n"]),
        ).fetchone()
    if row is not None and row[0] == 0:
        time.sleep(payload["seconds"])  # noqa: ASYNC251 - the fault under test: a blocked event loop


@notifyq.periodic("*/2 * * * * *", queue="faults", catch_up="all")
async def tick() -> None:
    """A cron slot every 2 s: the run checks that each slot between the first and the last was
    enqueued exactly once, through leader kills, freezes and a restarted database."""
