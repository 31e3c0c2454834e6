"""The client's choice between the hand-over insert and the plain one (notifyq/hand_over.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from notifyq.hand_over import RETRY_AFTER, HandOverGate
from notifyq.models import NewJob


def job(**fields: object) -> NewJob:
    return NewJob(queue="q", task="t", payload="{}", max_attempts=3, **fields)  # type: ignore[arg-type]


def test_only_unkeyed_jobs_due_now_try_it() -> None:
    gate = HandOverGate(clock=lambda: 0.0)
    assert gate.open_for(job())
    assert gate.open_for(job(delay=0.0))
    assert not gate.open_for(job(delay=1.5))
    assert not gate.open_for(job(run_at=datetime(2030, 1, 1, tzinfo=UTC)))
    assert not gate.open_for(job(idempotency_key="k"))


def test_a_try_that_found_no_worker_closes_it_for_a_while() -> None:
    now = [100.0]
    gate = HandOverGate(clock=lambda: now[0])
    gate.saw(handed_over=True)
    assert gate.open_for(job())
    gate.saw(handed_over=False)
    assert not gate.open_for(job())
    now[0] += RETRY_AFTER * 0.9
    assert not gate.open_for(job())
    now[0] += RETRY_AFTER * 0.1
    assert gate.open_for(job())
