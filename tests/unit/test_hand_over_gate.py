"""The client's choice between the hand-over insert and the plain one (notifyq/hand_over.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from notifyq.hand_over import MAX_PAYLOAD, RETRY_AFTER, TRY_TIMEOUT, HandOverGate
from notifyq.models import NewJob


def job(queue: str = "q", payload: str = "{}", **fields: object) -> NewJob:
    return NewJob(queue=queue, task="t", payload=payload, max_attempts=3, **fields)  # type: ignore[arg-type]


def test_only_unkeyed_jobs_due_now_with_a_small_payload_try_it() -> None:
    def tries(candidate: NewJob) -> bool:
        return HandOverGate(clock=lambda: 0.0).open_for(candidate)

    assert tries(job())
    assert tries(job(delay=0.0))
    assert tries(job(payload="x" * MAX_PAYLOAD))
    assert not tries(job(payload="x" * (MAX_PAYLOAD + 1)))
    assert not tries(job(delay=1.5))
    assert not tries(job(run_at=datetime(2030, 1, 1, tzinfo=UTC)))
    assert not tries(job(idempotency_key="k"))


def test_a_try_that_found_no_worker_closes_it_on_that_queue_for_a_while() -> None:
    now = [100.0]
    gate = HandOverGate(clock=lambda: now[0])
    gate.saw(job(), handed_over=True)
    assert gate.open_for(job())
    gate.saw(job(), handed_over=False)
    assert not gate.open_for(job())
    assert gate.open_for(job(queue="other"))  # another queue's workers are another matter
    now[0] += RETRY_AFTER / 2
    assert not gate.open_for(job())
    now[0] += RETRY_AFTER
    assert gate.open_for(job())


def test_until_a_try_hands_its_job_over_one_try_at_a_time_goes_out_on_a_queue() -> None:
    now = [100.0]
    gate = HandOverGate(clock=lambda: now[0])
    assert gate.open_for(job())
    assert not gate.open_for(job())  # its answer is out: the concurrent producers insert plainly
    assert gate.open_for(job(queue="other"))
    gate.saw(job(), handed_over=True)
    assert [gate.open_for(job()) for _ in range(3)] == [True] * 3  # open: every insert tries
    gate.saw(job(), handed_over=False)
    now[0] += RETRY_AFTER
    assert gate.open_for(job())  # closed, then one try again
    assert not gate.open_for(job())


def test_a_try_whose_answer_never_came_holds_the_others_back_only_for_a_while() -> None:
    now = [100.0]
    gate = HandOverGate(clock=lambda: now[0])
    assert gate.open_for(job())  # and its call fails: saw() is never called
    now[0] += TRY_TIMEOUT / 2
    assert not gate.open_for(job())
    now[0] += TRY_TIMEOUT
    assert gate.open_for(job())
