"""Real `notifyq-worker` processes: they share work exactly once and hand jobs back on SIGTERM."""

from __future__ import annotations

import signal
import time

import psycopg
import pytest

from notifyq import JobSpec, Settings, SyncClient
from tests.e2e.conftest import WorkerFactory

pytestmark = pytest.mark.e2e


def _wait(predicate: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {seconds}s")


def _scalar(url: str, query: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


def _listeners(url: str) -> int:
    return _scalar(
        url,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'notifyq listener'",
    )


def test_two_worker_processes_run_every_job_exactly_once(
    database_url: str, runs_table: str, start_worker: WorkerFactory
) -> None:
    start_worker("--concurrency", "8")
    start_worker("--concurrency", "8")
    _wait(lambda: _listeners(database_url) >= 2, 30)
    with SyncClient(Settings(database_url=database_url)) as client:
        client.enqueue_many([JobSpec(task="record", payload={"n": n}) for n in range(300)])
    done = "SELECT count(*) FROM notifyq.jobs WHERE status = 'succeeded'"
    _wait(lambda: _scalar(database_url, done) == 300, 60)
    assert _scalar(database_url, f"SELECT count(*) FROM {runs_table}") == 300
    assert _scalar(database_url, f"SELECT count(DISTINCT n) FROM {runs_table}") == 300
    assert _scalar(database_url, f"SELECT count(DISTINCT pid) FROM {runs_table}") == 2


def test_sigterm_hands_a_running_job_back_and_exits_cleanly(
    database_url: str, runs_table: str, start_worker: WorkerFactory
) -> None:
    proc = start_worker("--shutdown-timeout", "0.5")
    _wait(lambda: _listeners(database_url) >= 1, 30)
    with SyncClient(Settings(database_url=database_url)) as client:
        job_id = client.enqueue("record_then_block", {"n": 1})
        _wait(lambda: _scalar(database_url, f"SELECT count(*) FROM {runs_table}") == 1, 30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        job = client.get(job_id)
    assert (job.status.value, job.attempts, job.lease_holder) == ("queued", 0, None)
