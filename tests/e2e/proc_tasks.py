"""Tasks for worker processes started by the e2e tests: each run is recorded in the test's database."""

from __future__ import annotations

import os
import time

import psycopg

import notifyq

_DATABASE_URL = os.environ.get("DATABASE_URL", "")


def _record(n: int) -> None:
    with psycopg.connect(_DATABASE_URL, autocommit=True) as conn:
        conn.execute("INSERT INTO e2e_runs (n, pid) VALUES (%s, %s)", (n, os.getpid()))


@notifyq.task
def record(payload: dict[str, int]) -> None:
    _record(payload["n"])


@notifyq.task
def record_then_block(payload: dict[str, int]) -> None:
    """Records its start, then blocks far longer than any test waits (until cancelled or killed)."""
    _record(payload["n"])
    time.sleep(payload.get("seconds", 300))


@notifyq.task
def block_first_run(payload: dict[str, int]) -> None:
    """Blocks on its first run (so the test can kill the worker holding it); returns on later runs."""
    with psycopg.connect(_DATABASE_URL, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO e2e_runs (n, pid) VALUES (%s, %s)"
            " RETURNING (SELECT count(*) FROM e2e_runs WHERE n = %s)",
            (payload["n"], os.getpid(), payload["n"]),
        ).fetchone()
    if row is not None and row[0] == 0:
        time.sleep(300)
