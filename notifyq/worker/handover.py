"""Hand-overs: jobs a producer's insert claimed for this worker (migrations/0008_hand_over.sql).

The listener passes every message of the worker's own channel to `receive`. The job is started
when a runner is free. It is handed straight back (released: queued again, its attempt given back,
its queue notified) when none is, which happens when a claim in flight holds the runners or the
worker stops; so no more than `concurrency` jobs are ever held.

A hand-over whose message was lost (the listener's connection went down) is a job leased to this
worker that it does not know. `adopt_lost` finds those after the listener reconnects, and
`release_held`, the last word of a stopping worker, hands back any left.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from notifyq import db, queries
from notifyq.models import ClaimedJob, JobResult, Outcome, decode_hand_over
from notifyq.worker.completer import Completer
from notifyq.worker.executor import Executor

log = logging.getLogger("notifyq.worker.handover")


class HandOvers:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        statements: queries.Statements,
        worker_id: uuid.UUID,
        executor: Executor,
        completer: Completer,
        on_received: Callable[[ClaimedJob], None],
        on_started: Callable[[Sequence[ClaimedJob]], None],
        on_unreadable: Callable[[], None],
        db_timeout: float = 10.0,
    ) -> None:
        self.pool = pool
        self.statements = statements
        self.worker_id = worker_id
        self.executor = executor
        self.completer = completer
        self.on_received = on_received  # every hand-over that used one of our slots
        self.on_started = on_started
        self.on_unreadable = on_unreadable
        self.db_timeout = db_timeout
        self.stopping = False  # set when the worker stops: every hand-over goes back
        self.handed_back = 0
        self.adopted = 0
        # (id, attempt) of adopted jobs: their message may still come, and must not start them again
        self._adopted: set[tuple[int, int]] = set()

    def receive(self, message: str) -> None:
        try:
            job = decode_hand_over(message)
        except msgspec.DecodeError as exc:  # not from our trigger? look for our jobs all the same
            log.error("unreadable hand-over notification (%s): %.200s", exc, message)  # noqa: TRY400
            self.on_unreadable()
            return
        if (job.id, job.attempts) in self._adopted:
            self._adopted.discard((job.id, job.attempts))
            return
        self.on_received(job)
        self._start_or_hand_back([job])

    async def adopt_lost(self) -> None:
        """Start (or hand back) the jobs leased to us that we do not know. Run by the claimer
        between its claims, with outcome writes paused: a job we know is running here or has its
        outcome buffered, before and after the query (one may finish, or be lost, meanwhile)."""
        query = queries.job_leased_to(self.statements, worker=self.worker_id)
        async with self.completer.paused():
            known = self._known()
            leased = await db.fetch_all_within(self.pool, query, self.db_timeout)
            known |= self._known()
            lost = [job for job in leased if job.id not in known]
        self._adopted |= {(job.id, job.attempts) for job in lost}
        self.adopted += len(lost)
        if lost:
            log.warning("found %d handed-over jobs whose notification was lost", len(lost))
        self._start_or_hand_back(lost)

    async def release_held(self) -> None:
        """The stopping worker's last word: hand back the jobs still leased to it (its runs are
        over), as `release` outcomes like any other hand-back."""
        if self.completer.buffer:  # hand-overs that came back after the worker's last flush
            await self.completer.flush()
        if self.completer.buffer:  # outcomes not written: their jobs must not be released
            log.warning("%d outcomes not written; their leases will expire", len(self.completer.buffer))
            return
        query = queries.job_leased_to(self.statements, worker=self.worker_id)
        try:
            leased = await db.fetch_all_within(self.pool, query, self.db_timeout)
        except psycopg.Error as exc:
            log.warning("could not list the jobs leased to worker %s (%s)", self.worker_id, exc)
            return
        if leased:
            log.warning("handing back %d handed-over jobs this worker never received", len(leased))
            self._hand_back(leased)
            await self.completer.flush()

    def _known(self) -> set[int]:
        return {*self.executor.running, *(r.job_id for r in self.completer.buffer)}

    def _start_or_hand_back(self, jobs: list[ClaimedJob]) -> None:
        room = 0 if self.stopping else max(self.executor.free, 0)
        for job in jobs[:room]:
            self.executor.start(job)
        self._hand_back(jobs[room:])
        if room:
            self.on_started(jobs[:room])

    def _hand_back(self, jobs: list[ClaimedJob]) -> None:
        for job in jobs:
            self.handed_back += 1
            self.completer.add(JobResult(job_id=job.id, attempt=job.attempts, outcome=Outcome.RELEASE))
