"""A leader whose process freezes (SIGSTOP: a stuck VM, a debugger, a blocked event loop) stops
ticking; the server closes its idle session after `leader_idle_timeout`, the leader lock goes free,
another worker leads, and the frozen one steps down when it runs again."""

from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.conftest import WorkerFactory
from tests.e2e.test_worker_process import _scalar, _wait

pytestmark = pytest.mark.e2e

LEADER_PID = "SELECT coalesce(max(pid), 0) FROM notifyq.workers WHERE leader_since IS NOT NULL"


def test_a_frozen_leader_is_replaced_and_steps_down_when_it_thaws(
    database_url: str,
    start_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NOTIFYQ_LEADER_TICK", "0.1")
    monkeypatch.setenv("NOTIFYQ_LEADER_IDLE_TIMEOUT", "2")
    frozen = start_worker()
    _wait(lambda: _scalar(database_url, LEADER_PID) == frozen.pid, 30)
    other = start_worker()
    _wait(lambda: _scalar(database_url, "SELECT count(*) FROM notifyq.workers") == 2, 30)

    frozen.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        _wait(lambda: _scalar(database_url, LEADER_PID) == other.pid, 30)
        took_over = time.monotonic() - stopped_at
    finally:
        frozen.send_signal(signal.SIGCONT)
    # thawed, the old leader finds its session closed and campaigns again, as a follower
    leader_sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'notifyq leader'"
    _wait(lambda: _scalar(database_url, leader_sessions) == 2, 30)
    assert frozen.poll() is None
    assert _scalar(database_url, LEADER_PID) == other.pid
    assert _scalar(database_url, "SELECT count(*) FROM notifyq.workers WHERE leader_since IS NOT NULL") == 1
    with capsys.disabled():
        print(
            f"\n[frozen leader] another worker led {took_over:.2f}s after the leader froze (idle timeout 2 s)"
        )
