"""The sync twin of the client, for WSGI apps, Django, scripts: psycopg's sync API, no event loop.

It shares every statement, validation and row type with `notifyq.client`; only the I/O call
differs. `conn=` takes a sync psycopg `Connection` (for Django, `connection.connection` under
psycopg 3), so the job joins the caller's transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from psycopg import Connection
from psycopg_pool import ConnectionPool

from notifyq import db, queries, tasks
from notifyq.client import assign_ids, existing_id, list_limit, missing_keys
from notifyq.errors import JobNotFoundError, NotifyqError
from notifyq.hand_over import HandOverGate
from notifyq.models import CancelResult, Job, JobStatus, NewJob, QueueStats, RetryResult, WorkerInfo
from notifyq.settings import Settings
from notifyq.tasks import JobSpec, Registry, Task


class SyncClient:
    """A sync connection pool and the operations on jobs. Use as `with SyncClient(settings) as c:`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        pool: ConnectionPool | None = None,
        registry: Registry = tasks.registry,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.registry = registry
        self.statements = queries.statements(self.settings.schema)
        self._own_pool = pool is None
        self.pool = pool or db.sync_pool(self.settings)
        self.hand_over = HandOverGate()  # as Client.hand_over

    def open(self) -> None:
        if self._own_pool:
            self.pool.open(wait=True)

    def close(self) -> None:
        if self._own_pool:
            self.pool.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _connection(self, conn: Connection[Any] | None) -> Iterator[Connection[Any]]:
        if conn is not None:
            if not isinstance(conn, Connection):
                raise NotifyqError("conn must be a psycopg Connection (use notifyq.enqueue in async code)")
            yield conn
            return
        with self.pool.connection() as pooled:
            yield pooled

    def enqueue(
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
        conn: Connection[Any] | None = None,
    ) -> int:
        job = tasks.build_job(
            task, payload, registry=self.registry, queue=queue, run_at=run_at, delay=delay,
            priority=priority, max_attempts=max_attempts, idempotency_key=idempotency_key,
        )  # fmt: skip
        hand_over = self.hand_over.open_for(job)
        with self._connection(conn) as c:
            inserted = queries.fetch_one_sync(
                c, queries.job_insert(self.statements, job=job, hand_over=hand_over)
            )
            if inserted is None:
                assert job.idempotency_key is not None  # only a key conflict inserts nothing
                query = queries.job_ids_by_idempotency_key(self.statements, keys=[job.idempotency_key])
                return existing_id(job, queries.fetch_all_sync(c, query))
        if hand_over:
            self.hand_over.saw(job, handed_over=inserted.handed_over)
        return inserted.id

    def enqueue_many(self, specs: Iterable[JobSpec], *, conn: Connection[Any] | None = None) -> list[int]:
        """As `Client.enqueue_many`: validated first on the caller's connection, streamed on a pooled one."""
        listed = list(specs)
        if not listed:
            return []
        if conn is None and queries.copyable(listed):
            built = tasks.iter_jobs(listed, registry=self.registry)  # builds the first now
            with self._connection(None) as c:
                return self._copy(c, built, len(listed))
        jobs = tasks.build_jobs(listed, registry=self.registry)
        with self._connection(conn) as c:
            if queries.copyable(jobs):
                return self._copy(c, jobs, len(jobs))
            inserted = queries.fetch_all_sync(c, queries.job_insert_many(self.statements, jobs=jobs))
            missing = missing_keys(jobs, inserted)
            existing = []
            if missing:
                query = queries.job_ids_by_idempotency_key(self.statements, keys=missing)
                existing = queries.fetch_all_sync(c, query)
        return assign_ids(jobs, inserted, existing)

    def _copy(self, conn: Connection[Any], jobs: Iterable[NewJob], count: int) -> list[int]:
        ids = queries.fetch_all_sync(conn, queries.job_ids_reserve(self.statements, count=count))
        queries.copy_rows_sync(conn, self.statements, "job_copy", queries.job_copy_rows(jobs, ids))
        return ids

    def get(self, job_id: int) -> Job:
        with self._connection(None) as c:
            job = queries.fetch_one_sync(c, queries.job_get(self.statements, job_id=job_id))
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def list_jobs(
        self,
        *,
        queue: str | None = None,
        task: str | None = None,
        status: JobStatus | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[Job]:
        query = queries.job_list(
            self.statements, queue=queue, task=task, status=status, before=before,
            limit=list_limit(limit),
        )  # fmt: skip
        with self._connection(None) as c:
            return queries.fetch_all_sync(c, query)

    def cancel(self, job_id: int, *, reason: str | None = None) -> CancelResult:
        with self._connection(None) as c:
            query = queries.job_cancel(self.statements, job_id=job_id, reason=reason)
            result = queries.fetch_one_sync(c, query)
        return result or CancelResult(job_id=job_id, status=None)

    def retry(self, job_id: int) -> RetryResult:
        with self._connection(None) as c:
            result = queries.fetch_one_sync(c, queries.job_retry(self.statements, job_id=job_id))
        if result is None:
            raise JobNotFoundError(job_id)
        return result

    def queue_stats(self) -> list[QueueStats]:
        with self._connection(None) as c:
            return queries.fetch_all_sync(c, queries.queue_stats(self.statements))

    def list_workers(self) -> list[WorkerInfo]:
        with self._connection(None) as c:
            return queries.fetch_all_sync(c, queries.worker_list(self.statements))


_default: SyncClient | None = None
_default_lock = threading.Lock()


def default_client() -> SyncClient:
    """The process's default sync client, from the environment, opened on first use (thread-safe)."""
    global _default  # noqa: PLW0603 - one default client per process
    with _default_lock:
        if _default is None:
            client = SyncClient()
            client.open()
            _default = client
        return _default


def configure(settings: Settings) -> SyncClient:
    global _default
    with _default_lock:
        previous, _default = _default, SyncClient(settings)
        _default.open()
        client = _default
    if previous is not None:
        previous.close()
    return client


def enqueue(task: Task | str, payload: Any = None, **options: Any) -> int:
    """Enqueue one job with the default sync client; see `SyncClient.enqueue`."""
    return default_client().enqueue(task, payload, **options)


def enqueue_many(specs: Iterable[JobSpec], **options: Any) -> list[int]:
    return default_client().enqueue_many(specs, **options)
