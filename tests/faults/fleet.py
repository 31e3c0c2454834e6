"""The fleet under test: the run's state, its worker processes, and SQL that rides out restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from notifyq import devdb

ROOT = Path(__file__).resolve().parents[2]
LEASE = "3"
# the leader's session closes after this much silence: a frozen leader is replaced this fast
LEADER_IDLE_TIMEOUT = "2"
# the notification-queue guard acts past this fraction (8 MB of the 8 GB queue): the run's flood
# of 20 MB crosses it, the production default (50 %) would take hours of flooding
GUARD_AT = "0.001"
# worker processes run with their wall clocks this far off (libfaketime), in turn
SKEWS = ("-1h", "+0", "+1h")
FAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"), None)  # Debian's faketime


@dataclass
class Run:
    server: devdb.DevDatabase
    url: str
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    enqueued: list[int] = field(default_factory=list)
    skews: Counter[str] = field(default_factory=Counter)
    # what the freeze faults measured, and what went wrong during a fault
    timings: dict[str, list[float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def log(message: str) -> None:
    sys.stderr.write(f"[faults {time.strftime('%H:%M:%S')}] {message}\n")


def start_worker(run: Run) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": run.url, "PYTHONPATH": str(ROOT)}
    env |= {"NOTIFYQ_LEADER_IDLE_TIMEOUT": LEADER_IDLE_TIMEOUT, "NOTIFYQ_NOTIFY_QUEUE_WARN": GUARD_AT}
    if FAKETIME is not None:
        skew = SKEWS[sum(run.skews.values()) % len(SKEWS)]
        run.skews[skew] += 1
        env |= {"LD_PRELOAD": str(FAKETIME), "FAKETIME": skew, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    cmd = [sys.executable, "-m", "notifyq.cli.worker", "tests.faults.tasks", "--queues", "faults"]
    cmd += ["--concurrency", "8", "--lease", LEASE, "--poll-interval", "2", "--log-level", "ERROR"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    run.workers.append(proc)
    return proc


def leader_pid(run: Run) -> int | None:
    rows = sql(run.url, "SELECT pid FROM notifyq.workers WHERE leader_since IS NOT NULL")
    return int(str(rows[0][0])) if rows else None


def sql(url: str, query: str) -> list[tuple[object, ...]]:
    for attempt in range(30):
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                cur = conn.execute(query)  # type: ignore[arg-type]
                return cur.fetchall() if cur.description else []
        except psycopg.OperationalError:
            if attempt == 29:
                raise
            time.sleep(0.2)
    return []


def wait_for(condition: object, seconds: float) -> float | None:
    """Seconds until `condition()` held, re-checked every 0.1 s; None if it never did in time."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.1)
    return None
