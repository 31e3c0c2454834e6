"""What the scenarios share: a fresh database, worker processes, waiting, percentiles."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors

from notifyq import devdb
from notifyq.migrate import migrate_sync

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "bench"


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the report."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


@contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    devdb.drop_database(server_url, name)
    url = devdb.create_database(server_url, name)
    with psycopg.connect(url) as conn:
        migrate_sync(conn, schema="notifyq")
    try:
        yield url
    finally:
        devdb.drop_database(server_url, name)


def scalar(url: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    return None if row is None else row[0]


def execute(url: str, query: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(query)  # type: ignore[arg-type]


def wait(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out after {seconds:g}s waiting for {what}")


@contextmanager
def workers(
    url: str, count: int, *args: str, env: dict[str, str] | None = None, queue: str = QUEUE
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` notifyq-worker processes on `queue`, started and listening before the block; other
    workers may run beside them (each block waits for and deregisters its own)."""
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "notifyq.cli.worker",
        "bench.tasks",
        "--queues",
        queue,
        "--log-level",
        "WARNING",
    ]
    procs = [subprocess.Popen([*cmd, *args], env=env, cwd=ROOT) for _ in range(count)]
    pids = [proc.pid for proc in procs]
    registered = "SELECT count(*) FROM notifyq.workers WHERE pid = ANY(%s)"
    try:
        wait(lambda: scalar(url, registered, (pids,)) == count, 30, "workers to register")
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        with psycopg.connect(url, autocommit=True) as conn:  # any a killed worker left behind
            conn.execute("DELETE FROM notifyq.workers WHERE pid = ANY(%s)", (pids,))


def done_count(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM notifyq.jobs WHERE status = 'succeeded'"))


def exactly_once(url: str, expected: int) -> bool:
    """Every job succeeded, on its first attempt (each ran exactly once)."""
    query = "SELECT count(*) FILTER (WHERE status = 'succeeded' AND attempts = 1), count(*) FROM notifyq.jobs"
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    return row == (expected, expected)


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {
            "p50": values[0] if values else 0.0,
            "p90": 0.0,
            "p99": 0.0,
            "max": values[0] if values else 0.0,
        }
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": max(values)}


def reset(url: str) -> None:
    execute(url, "TRUNCATE notifyq.jobs")


def settle(url: str) -> None:
    """Write out what earlier measurements left dirty (a checkpoint), so their checkpoint does not
    land in the next one; skipped, with a word, where the role may not checkpoint."""
    try:
        execute(url, "CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        log("no CHECKPOINT (needs superuser or pg_checkpoint): measurements may share checkpoint work")
