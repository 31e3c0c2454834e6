"""Crash recovery with real processes: a worker killed with SIGKILL has its jobs finished by another
worker within seconds, at default settings (the leader proves it dead through its advisory lock)."""

from __future__ import annotations

import signal
import time

import psycopg
import pytest

from notifyq import JobSpec, Settings, SyncClient
from notifyq.settings import DEFAULT_RESCUE_GRACE
from tests.e2e.conftest import WorkerFactory
from tests.e2e.test_worker_process import _scalar, _wait

pytestmark = pytest.mark.e2e

JOBS = 4
# the promise is 5 s; the bound here is loose because CI machines are shared and noisy
BOUND = 20.0


def test_a_sigkilled_workers_jobs_finish_elsewhere_within_seconds(
    database_url: str, runs_table: str, start_worker: WorkerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # a server that just started is in its restart grace (every lock vanished): wait it out
    uptime = "SELECT extract(epoch FROM now() - pg_postmaster_start_time())::int"
    _wait(lambda: _scalar(database_url, uptime) > DEFAULT_RESCUE_GRACE, DEFAULT_RESCUE_GRACE + 5)
    victim = start_worker("--concurrency", str(JOBS))
    _wait(lambda: _scalar(database_url, "SELECT count(*) FROM notifyq.workers") == 1, 30)
    with SyncClient(Settings(database_url=database_url)) as client:
        client.enqueue_many([JobSpec(task="block_first_run", payload={"n": n}) for n in range(JOBS)])
    _wait(lambda: _scalar(database_url, f"SELECT count(*) FROM {runs_table}") == JOBS, 30)
    start_worker("--concurrency", str(JOBS))
    _wait(lambda: _scalar(database_url, "SELECT count(*) FROM notifyq.workers") == 2, 30)

    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    killed_at = time.monotonic()
    done = "SELECT count(*) FROM notifyq.jobs WHERE status = 'succeeded'"
    _wait(lambda: _scalar(database_url, done) == JOBS, BOUND)
    recovered_in = time.monotonic() - killed_at

    with psycopg.connect(database_url) as conn:
        attempts = conn.execute("SELECT DISTINCT attempts FROM notifyq.jobs").fetchall()
        errors = conn.execute(
            "SELECT DISTINCT errors->0->>'error' LIKE '%%died while running%%' FROM notifyq.jobs"
        ).fetchall()
    assert attempts == [(2,)]
    assert errors == [(True,)]
    assert _scalar(database_url, "SELECT count(*) FROM notifyq.workers") == 1
    with capsys.disabled():
        print(f"\n[crash recovery] {JOBS} jobs of a SIGKILLed worker done {recovered_in:.2f}s after the kill")
