"""The async client: enqueue (one, many, inside the caller's transaction), get, list, cancel, retry.

Everything is validated before it can be committed (names, payloads, options; see
`tasks.build_job`), and on the caller's connection before anything is sent. With `conn=` the
insert runs on the caller's psycopg connection and so inside its transaction: the job, and the
NOTIFY that wakes workers, exist only if the caller commits. Without it a pooled autocommit
connection is used. `notifyq.enqueue` and friends use a default client built from the environment
on first use (`configure` sets it explicitly); it belongs to the event loop that first used it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from notifyq import db, queries, tasks
from notifyq.errors import JobNotFoundError, NotifyqError
from notifyq.hand_over import HandOverGate
from notifyq.models import (
    CancelResult,
    ClaimedJob,
    Job,
    JobResult,
    JobStatus,
    LeaseState,
    NewJob,
    Outcome,
    QueueStats,
    RetryResult,
    WorkerInfo,
)
from notifyq.settings import Settings
from notifyq.tasks import JobSpec, Registry, Task

MAX_LIST_LIMIT = 1000


class Client:
    """A connection pool and the operations on jobs. Use as `async with Client(settings) as c:`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        pool: AsyncConnectionPool | None = None,
        registry: Registry = tasks.registry,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.registry = registry
        self.statements = queries.statements(self.settings.schema)
        self._own_pool = pool is None
        self.pool = pool or db.async_pool(self.settings)
        self.hand_over = HandOverGate()  # whether enqueue tries handing a job over in its insert

    async def open(self) -> None:
        if self._own_pool:
            await self.pool.open(wait=True)

    async def close(self) -> None:
        if self._own_pool:
            await self.pool.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def _connection(self, conn: AsyncConnection[Any] | None) -> AsyncIterator[AsyncConnection[Any]]:
        if conn is not None:
            if not isinstance(conn, AsyncConnection):
                raise NotifyqError("conn must be a psycopg AsyncConnection (use notifyq.sync for sync code)")
            yield conn
            return
        async with self.pool.connection() as pooled:
            yield pooled

    # -- enqueue -----------------------------------------------------------------------------

    async def enqueue(
        self,
        task: Task | str,
        payload: Any = None,
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        delay: float | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        conn: AsyncConnection[Any] | None = None,
    ) -> int:
        """Insert one job; returns its id (the existing job's id if the idempotency key is taken)."""
        job = tasks.build_job(
            task, payload, registry=self.registry, queue=queue, run_at=run_at, delay=delay,
            priority=priority, max_attempts=max_attempts, idempotency_key=idempotency_key,
        )  # fmt: skip
        hand_over = self.hand_over.open_for(job)
        async with self._connection(conn) as c:
            inserted = await queries.fetch_one(
                c, queries.job_insert(self.statements, job=job, hand_over=hand_over)
            )
            if inserted is None:
                return await self._existing_id(c, job)
        if hand_over:
            self.hand_over.saw(job, handed_over=inserted.handed_over)
        return inserted.id

    async def _existing_id(self, conn: AsyncConnection[Any], job: NewJob) -> int:
        assert job.idempotency_key is not None  # only a key conflict inserts nothing
        query = queries.job_ids_by_idempotency_key(self.statements, keys=[job.idempotency_key])
        return existing_id(job, await queries.fetch_all(conn, query))

    async def enqueue_many(
        self, specs: Iterable[JobSpec], *, conn: AsyncConnection[Any] | None = None
    ) -> list[int]:
        """Insert many jobs atomically (one COPY when all are due now without keys, else one
        INSERT); ids in input order (see `enqueue` on keys).

        On the caller's connection every job is validated before anything is sent, so a bad one
        leaves its transaction as it was. On a pooled one a COPY streams each job as it is built
        (`build_job` passes run_at, delay and the key through, so the specs tell which path): a
        bad one aborts the COPY, nothing is inserted, and the ids reserved for it stay unused.
        """
        listed = list(specs)
        if not listed:
            return []
        if conn is None and queries.copyable(listed):
            built = tasks.iter_jobs(listed, registry=self.registry)  # builds the first now
            async with self._connection(None) as c:
                return await self._copy(c, built, len(listed))
        jobs = tasks.build_jobs(listed, registry=self.registry)
        async with self._connection(conn) as c:
            if queries.copyable(jobs):
                return await self._copy(c, jobs, len(jobs))
            inserted = await queries.fetch_all(c, queries.job_insert_many(self.statements, jobs=jobs))
            missing = missing_keys(jobs, inserted)
            existing = []
            if missing:
                query = queries.job_ids_by_idempotency_key(self.statements, keys=missing)
                existing = await queries.fetch_all(c, query)
        return assign_ids(jobs, inserted, existing)

    async def _copy(self, conn: AsyncConnection[Any], jobs: Iterable[NewJob], count: int) -> list[int]:
        ids = await queries.fetch_all(conn, queries.job_ids_reserve(self.statements, count=count))
        await queries.copy_rows(conn, self.statements, "job_copy", queries.job_copy_rows(jobs, ids))
        return ids

    # -- inspect and steer -------------------------------------------------------------------

    async def get(self, job_id: int) -> Job:
        async with self._connection(None) as c:
            job = await queries.fetch_one(c, queries.job_get(self.statements, job_id=job_id))
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    async def list_jobs(
        self,
        *,
        queue: str | None = None,
        task: str | None = None,
        status: JobStatus | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs newest first; pass the last id of a page as `before` for the next page."""
        query = queries.job_list(
            self.statements, queue=queue, task=task, status=status, before=before,
            limit=list_limit(limit),
        )  # fmt: skip
        async with self._connection(None) as c:
            return await queries.fetch_all(c, query)

    async def cancel(self, job_id: int, *, reason: str | None = None) -> CancelResult:
        """Queued: cancelled now. Running: its worker is asked to stop (`requested`). Finished: as is."""
        async with self._connection(None) as c:
            query = queries.job_cancel(self.statements, job_id=job_id, reason=reason)
            result = await queries.fetch_one(c, query)
        return result or CancelResult(job_id=job_id, status=None)

    async def retry(self, job_id: int) -> RetryResult:
        """A failed or cancelled job back to queued, with its attempts reset."""
        async with self._connection(None) as c:
            result = await queries.fetch_one(c, queries.job_retry(self.statements, job_id=job_id))
        if result is None:
            raise JobNotFoundError(job_id)
        return result

    async def queue_stats(self) -> list[QueueStats]:
        async with self._connection(None) as c:
            return await queries.fetch_all(c, queries.queue_stats(self.statements))

    async def notification_queue_usage(self) -> float:
        """pg_notification_queue_usage(): near 1, notifying commits (every enqueue) start failing."""
        async with self._connection(None) as c:
            usage = await queries.fetch_one(c, queries.notification_queue_usage(self.statements))
        return float(usage or 0.0)

    async def list_workers(self) -> list[WorkerInfo]:
        """The workers registry: live worker processes, what they serve, which one leads."""
        async with self._connection(None) as c:
            return await queries.fetch_all(c, queries.worker_list(self.statements))

    # -- leasing, for workers outside this process (the HTTP API) -----------------------------
    # The claim token is (holder, attempt): the worker's own statements check both, so a job that
    # was rescued and claimed again cannot be finished or extended with an old token.

    async def lease(
        self, queues: Sequence[str], *, limit: int, lease_seconds: float, holder: uuid.UUID
    ) -> list[ClaimedJob]:
        """Claim up to `limit` due jobs of `queues` for `holder`, leased for `lease_seconds`."""
        query = queries.job_claim_batch(
            self.statements, worker=holder, queues=queues, limit=limit, lease=lease_seconds
        )
        async with self._connection(None) as c:
            return await queries.fetch_all(c, query)

    async def publish_demand(self, queues: Sequence[str], *, worker_id: uuid.UUID) -> None:
        """Ask producers to notify `queues` (worker_id must be a registered worker)."""
        async with self._connection(None) as c:
            await queries.fetch_all(c, queries.queue_wait(self.statements, worker=worker_id, queues=queues))

    async def renew_demand(self) -> None:
        """Keep producers notifying for another second: a waiter renews this while it waits
        after `publish_demand` (migrations/0011_demand_until.sql)."""
        async with self._connection(None) as c:
            await queries.fetch_all(c, queries.demand_renew(self.statements))

    async def finish(self, results: Sequence[JobResult], *, holder: uuid.UUID) -> list[int]:
        """Write outcomes of jobs `holder` holds; returns the ids written (others were not held)."""
        query = queries.job_finish_many(self.statements, worker=holder, results=results)
        async with self._connection(None) as c:
            return await queries.fetch_all(c, query)

    async def ack(self, job_id: int, *, holder: uuid.UUID, attempt: int) -> bool:
        result = JobResult(job_id=job_id, attempt=attempt, outcome=Outcome.SUCCEEDED)
        return bool(await self.finish([result], holder=holder))

    async def fail(
        self, job_id: int, *, holder: uuid.UUID, attempt: int, reason: str, retry_in: float | None
    ) -> Outcome | None:
        """Record a failed attempt: retried after `retry_in` while attempts remain, else failed.

        Returns the outcome written, None when the token no longer holds the job."""
        job = await self.get(job_id)
        retry = retry_in is not None and job.attempts < job.max_attempts
        outcome = Outcome.RETRY if retry else Outcome.FAILED
        result = JobResult(
            job_id=job_id, attempt=attempt, outcome=outcome, error=reason, retry_in=retry_in or 0
        )
        return outcome if await self.finish([result], holder=holder) else None

    async def heartbeat(
        self, job_id: int, *, holder: uuid.UUID, attempt: int, lease_seconds: float
    ) -> LeaseState | None:
        """Extend one lease; None when the token no longer holds the job."""
        query = queries.lease_extend_many(
            self.statements, worker=holder, held=[(job_id, attempt)], lease=lease_seconds
        )
        async with self._connection(None) as c:
            states = await queries.fetch_all(c, query)
        return states[0] if states else None


# -- pure helpers shared with the sync client ------------------------------------------------


def list_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise NotifyqError(f"limit must be in 1..{MAX_LIST_LIMIT}")
    return limit


def existing_id(job: NewJob, rows: Sequence[tuple[int, str | None]]) -> int:
    if not rows:
        # the conflicting job was deleted between the two statements (retention): a rare race
        raise NotifyqError(f"idempotency key {job.idempotency_key!r} conflicted but no job holds it")
    return rows[0][0]


def missing_keys(jobs: Sequence[NewJob], inserted: Sequence[tuple[int, str | None]]) -> list[str]:
    """Keys of jobs that inserted nothing because their idempotency key was taken."""
    got = {key for _, key in inserted if key is not None}
    return [j.idempotency_key for j in jobs if j.idempotency_key is not None and j.idempotency_key not in got]


def assign_ids(
    jobs: Sequence[NewJob],
    inserted: Sequence[tuple[int, str | None]],
    existing: Sequence[tuple[int, str | None]],
) -> list[int]:
    """Input order ids: keyless rows come back in input order; keyed rows are matched by key."""
    by_key = {key: job_id for job_id, key in (*existing, *inserted) if key is not None}
    keyless = iter([job_id for job_id, key in inserted if key is None])
    return [by_key[j.idempotency_key] if j.idempotency_key is not None else next(keyless) for j in jobs]


# -- the default client ----------------------------------------------------------------------

_default: Client | None = None


async def default_client() -> Client:
    """The process's default client, built from the environment and opened on first use."""
    global _default  # noqa: PLW0603 - one default client per process, like logging's root
    if _default is None:
        client = Client()
        await client.open()
        _default = client
    return _default


async def configure(settings: Settings) -> Client:
    """Replace the default client with one for `settings` (closing the previous one)."""
    global _default  # noqa: PLW0603 - see default_client
    previous, _default = _default, None
    if previous is not None:
        await previous.close()
    client = Client(settings)
    await client.open()
    _default = client
    return client


async def close_default() -> None:
    global _default
    previous, _default = _default, None
    if previous is not None:
        await previous.close()


async def enqueue(task: Task | str, payload: Any = None, **options: Any) -> int:
    """Enqueue one job with the default client; see `Client.enqueue` for the options."""
    return await (await default_client()).enqueue(task, payload, **options)


async def enqueue_many(specs: Iterable[JobSpec], **options: Any) -> list[int]:
    return await (await default_client()).enqueue_many(specs, **options)
