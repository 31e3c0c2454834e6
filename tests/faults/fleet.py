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
# a statement unanswered this long is abandoned (the silent-link fault lasts longer)
DB_TIMEOUT = "2"
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
    # one worker at a time reaches PostgreSQL through the fault proxy (`proxied_url`)
    proxied_url: str | None = None
    proxied: subprocess.Popen[bytes] | None = None


def log(message: str) -> None:
    sys.stderr.write(f"[faults {time.strftime('%H:%M:%S')}] {message}\n")


def start_worker(run: Run) -> subprocess.Popen[bytes]:
    """A worker process; it goes through the fault proxy when no live worker does."""
    through_proxy = run.proxied_url is not None and (run.proxied is None or run.proxied.poll() is not None)
    url = run.proxied_url if through_proxy and run.proxied_url else run.url
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    env |= {"NOTIFYQ_LEADER_IDLE_TIMEOUT": LEADER_IDLE_TIMEOUT, "NOTIFYQ_NOTIFY_QUEUE_WARN": GUARD_AT}
    env |= {"NOTIFYQ_DB_TIMEOUT": DB_TIMEOUT}
    if FAKETIME is not None:
        skew = SKEWS[sum(run.skews.values()) % len(SKEWS)]
        run.skews[skew] += 1
        env |= {"LD_PRELOAD": str(FAKETIME), "FAKETIME": skew, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    cmd = [sys.executable, "-m", "notifyq.cli.worker", "tests.faults.tasks", "--queues", "faults"]
    cmd += ["--concurrency", "8", "--lease", LEASE, "--poll-interval", "2", "--log-level", "ERROR"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    run.workers.append(proc)
    if through_proxy:
        run.proxied = proc
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
