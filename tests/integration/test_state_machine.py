"""A Hypothesis state machine over the job lifecycle, driving the real statements of notifyq.queries
against a real database: enqueue, claim, finish (succeed, fail, retry, release), a stale finish,
cancel, retry, and rescue of a dead worker. After every step each row must match the model."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from notifyq import queries
from notifyq.models import JobResult, NewJob, Outcome

WORKERS = [uuid.UUID(int=1), uuid.UUID(int=2)]
MAX_ATTEMPTS = 2


@dataclass
class Row:
    status: str = "queued"
    attempts: int = 0
    holder: uuid.UUID | None = None
    cancel_requested: bool = False
    errors: int = 0  # entries in the errors column
    last_error: str | None = None


def _machine(database_url: str) -> type[RuleBasedStateMachine]:  # noqa: C901 - the rules of one machine
    st_ = queries.statements("notifyq")

    class JobLifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.conn: psycopg.Connection[Any] = psycopg.connect(database_url, autocommit=True)
            self.conn.execute("TRUNCATE notifyq.jobs")
            self.model: dict[int, Row] = {}

        def teardown(self) -> None:
            self.conn.close()

        def _running(self, worker: uuid.UUID) -> list[int]:
            return [i for i, r in self.model.items() if r.status == "running" and r.holder == worker]

        @rule(n=st.integers(1, 3))
        def enqueue(self, n: int) -> None:
            for _ in range(n):
                job = NewJob(queue="q", task="t", payload="null", max_attempts=MAX_ATTEMPTS)
                inserted = queries.fetch_one_sync(self.conn, queries.job_insert(st_, job=job))
                assert inserted is not None
                job_id = inserted.id
                assert job_id not in self.model
                self.model[job_id] = Row()

        @rule(worker=st.sampled_from(WORKERS), limit=st.integers(1, 3))
        def claim(self, worker: uuid.UUID, limit: int) -> None:
            query = queries.job_claim_batch(st_, worker=worker, queues=["q"], limit=limit, lease=300)
            claimed = queries.fetch_all_sync(self.conn, query)
            due = sorted(i for i, r in self.model.items() if r.status == "queued")
            # same priority; retries here are due now: the oldest run_at first, which may not be id order
            assert len(claimed) == min(limit, len(due))
            for job in claimed:
                row = self.model[job.id]
                assert row.status == "queued"
                row.status, row.attempts, row.holder = "running", row.attempts + 1, worker
                assert job.attempts == row.attempts

        @rule(
            worker=st.sampled_from(WORKERS),
            outcome=st.sampled_from(list(Outcome)),
            error=st.sampled_from([None, "e"]),  # a success without one takes job_succeed_many
            data=st.data(),
        )
        def finish(self, worker: uuid.UUID, outcome: Outcome, error: str | None, data: st.DataObject) -> None:
            held = self._running(worker)
            if not held:
                return
            job_id = data.draw(st.sampled_from(held))
            row = self.model[job_id]
            result = JobResult(job_id=job_id, attempt=row.attempts, outcome=outcome, error=error)
            written = queries.fetch_all_sync(
                self.conn, queries.job_finish_many(st_, worker=worker, results=[result])
            )
            assert written == [job_id]
            row.holder = None
            if error is not None:
                row.errors, row.last_error = row.errors + 1, error
            if outcome is Outcome.RELEASE:
                row.status, row.attempts = "queued", row.attempts - 1
            elif outcome is Outcome.RETRY:
                row.status = "queued" if row.attempts < MAX_ATTEMPTS else "failed"
            else:
                row.status = outcome.value

        @rule(
            worker=st.sampled_from(WORKERS),
            outcome=st.sampled_from(list(Outcome)),
            error=st.sampled_from([None, "e"]),
            data=st.data(),
        )
        def stale_finish_is_refused(
            self, worker: uuid.UUID, outcome: Outcome, error: str | None, data: st.DataObject
        ) -> None:
            """A finish by a worker not holding the job (or on an older attempt) writes nothing."""
            if not self.model:
                return
            job_id = data.draw(st.sampled_from(sorted(self.model)))
            row = self.model[job_id]
            attempt = row.attempts - 1 if row.holder == worker else row.attempts
            result = JobResult(job_id=job_id, attempt=attempt, outcome=outcome, error=error)
            written = queries.fetch_all_sync(
                self.conn, queries.job_finish_many(st_, worker=worker, results=[result])
            )
            assert written == []

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            if not self.model:
                return
            job_id = data.draw(st.sampled_from(sorted(self.model)))
            result = queries.fetch_one_sync(self.conn, queries.job_cancel(st_, job_id=job_id, reason=None))
            assert result is not None
            row = self.model[job_id]
            if row.status == "queued":
                row.status = "cancelled"
            elif row.status == "running":
                row.cancel_requested = True
            assert result.status is not None
            assert result.status.value == row.status
            assert result.requested == (row.status == "running")

        @rule(data=st.data())
        def retry(self, data: st.DataObject) -> None:
            if not self.model:
                return
            job_id = data.draw(st.sampled_from(sorted(self.model)))
            result = queries.fetch_one_sync(self.conn, queries.job_retry(st_, job_id=job_id))
            assert result is not None
            row = self.model[job_id]
            assert result.retried == (row.status in ("failed", "cancelled"))
            if result.retried:
                row.status, row.attempts, row.cancel_requested = "queued", 0, False

        @rule(worker=st.sampled_from(WORKERS))
        def rescue_dead_worker(self, worker: uuid.UUID) -> None:
            rescued = queries.fetch_all_sync(
                self.conn, queries.job_rescue_many(st_, dead=[worker], limit=100)
            )
            assert sorted(r.id for r in rescued) == self._running(worker)
            for r in rescued:
                row = self.model[r.id]
                row.holder = None
                row.errors, row.last_error = row.errors + 1, f"worker {worker} died while running this job"
                row.status = "failed" if row.attempts >= MAX_ATTEMPTS else "queued"
                assert r.status.value == row.status

        @invariant()
        def rows_match_the_model(self) -> None:
            cur = self.conn.execute(
                "SELECT id, status::text, attempts, lease_holder, cancel_requested_at IS NOT NULL,"
                " finished_at IS NOT NULL, lease_expires_at IS NOT NULL, jsonb_array_length(errors),"
                " last_error FROM notifyq.jobs ORDER BY id"
            )
            rows = cur.fetchall()
            assert [r[0] for r in rows] == sorted(self.model)
            for job_id, status, attempts, holder, _cancel, finished, leased, errors, last_error in rows:
                row = self.model[job_id]
                assert (status, attempts, holder) == (row.status, row.attempts, row.holder), job_id
                assert (errors, last_error) == (row.errors, row.last_error), job_id
                assert 0 <= attempts <= MAX_ATTEMPTS
                assert finished == (status in ("succeeded", "failed", "cancelled"))
                assert leased == (status == "running")

    return JobLifecycle


def test_the_job_lifecycle_matches_its_model_under_any_sequence(database_url: str) -> None:
    run_state_machine_as_test(
        _machine(database_url),
        settings=settings(
            max_examples=300,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        ),
    )


def test_a_retry_written_on_the_last_attempt_ends_failed_and_the_queue_still_claims(
    database_url: str,
) -> None:
    """Found by the machine above: a queued row at max_attempts failed every later claim of its queue."""
    st_ = queries.statements("notifyq")
    worker = WORKERS[0]
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = NewJob(queue="q", task="t", payload="null", max_attempts=1)
        poisoned, other = (_insert(conn, job), _insert(conn, job))
        claim = queries.job_claim_batch(st_, worker=worker, queues=["q"], limit=1, lease=300)
        assert [j.id for j in queries.fetch_all_sync(conn, claim)] == [poisoned]
        retry = JobResult(job_id=poisoned, attempt=1, outcome=Outcome.RETRY, error="again")
        assert queries.fetch_all_sync(conn, queries.job_finish_many(st_, worker=worker, results=[retry])) == [
            poisoned
        ]
        assert [j.id for j in queries.fetch_all_sync(conn, claim)] == [other]
        row = conn.execute(
            "SELECT status::text, finished_at IS NOT NULL FROM notifyq.jobs WHERE id = %s", (poisoned,)
        )
        assert row.fetchone() == ("failed", True)


def _insert(conn: psycopg.Connection[Any], job: NewJob) -> int:
    inserted = queries.fetch_one_sync(conn, queries.job_insert(queries.statements("notifyq"), job=job))
    assert inserted is not None
    return inserted.id
