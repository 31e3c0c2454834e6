"""Cron: enqueue each due slot of each periodic task, exactly once per slot.

Exactly once rests on Postgres: a slot's job carries the idempotency key `cron:<task>:<slot>`, and
the unique index on that key makes a second insert (an overlapping leader, a retried tick) a
no-op. `cron_state` remembers the last slot handled per task so catch-up after downtime knows what
was missed; a task seen for the first time starts from now. The inserts and the state's advance
commit together, and wait for their WAL flush.
"""

from __future__ import annotations

import logging
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from notifyq import queries, tasks
from notifyq.models import NewJob
from notifyq.schedules import Schedule, slot_key

log = logging.getLogger("notifyq.leader.cron")


class Cron:
    def __init__(
        self, *, pool: AsyncConnectionPool, statements: queries.Statements, registry: tasks.Registry
    ) -> None:
        self.pool = pool
        self.statements = statements
        self.registry = registry

    async def run_once(self, now: datetime | None = None) -> list[int]:
        """Enqueue what is due at `now` (default: the database's clock); returns the new job ids."""
        schedules = list(self.registry.schedules.values())
        if not schedules:
            return []
        # one transaction that waits for its flush: the worker's pool may not (synchronous_commit),
        # and a slot's job, like every enqueue, must survive a crash once cron_state says it is done
        async with self.pool.connection() as conn, conn.transaction():
            await queries.fetch_all(conn, queries.synchronous_commit(on=True, local=True))
            if now is None:
                now = await queries.fetch_one(conn, queries.database_now(self.statements))
                assert now is not None
            query = queries.cron_state_get(self.statements, tasks=[s.task for s in schedules])
            last = dict(await queries.fetch_all(conn, query))
            jobs, advance = self._plan(schedules, last, now)
            ids = []
            if jobs:
                rows = await queries.fetch_all(conn, queries.job_insert_many(self.statements, jobs=jobs))
                ids = [job_id for job_id, _ in rows]
            await queries.fetch_all(conn, queries.cron_state_advance(self.statements, slots=advance))
        if ids:
            log.info("enqueued %d periodic jobs", len(ids))
        return ids

    def _plan(
        self, schedules: list[Schedule], last: dict[str, datetime], now: datetime
    ) -> tuple[list[NewJob], dict[str, datetime]]:
        jobs: list[NewJob] = []
        advance: dict[str, datetime] = {}
        for schedule in schedules:
            since = last.get(schedule.task)
            if since is None:
                advance[schedule.task] = now
                continue
            slots = schedule.due_slots(since, now)
            jobs += [self._job(schedule, slot) for slot in slots]
            if slots:
                advance[schedule.task] = slots[-1]
        return jobs, advance

    def _job(self, schedule: Schedule, slot: datetime) -> NewJob:
        return tasks.build_job(
            schedule.task,
            schedule.payload,
            registry=self.registry,
            idempotency_key=slot_key(schedule.task, slot),
        )
