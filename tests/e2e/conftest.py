"""Worker processes for e2e tests: real `notifyq-worker` processes against the test's database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]

WorkerFactory = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def runs_table(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE e2e_runs (n int NOT NULL, pid int NOT NULL, at timestamptz DEFAULT now())")
    return "e2e_runs"


@pytest.fixture
def start_worker(database_url: str) -> Iterator[WorkerFactory]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, module: str = "tests.e2e.proc_tasks") -> subprocess.Popen[bytes]:
        env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "notifyq.cli.worker", module, "--log-level", "WARNING", *args]
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
