"""Every SQL statement notifyq runs: one typed function per statement, and the executors.

Statements live in notifyq/sql/*.sql, each under a `-- name: noun_verb` header. They are rendered
once per schema with psycopg.sql ({schema} -> quoted identifier, {schema_literal} -> string literal)
into bytes, so the hot path never formats SQL. A query function only builds a `Query` (statement,
bound parameters, row factory); `fetch_all`/`fetch_one` run it on an async connection and their
`_sync` twins on a sync one: the sync client shares every statement and row type with the async one.
This is the only module that executes SQL.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Generic, Protocol, TypeVar

import msgspec
from psycopg import AsyncConnection, Connection, sql
from psycopg.rows import BaseRowFactory, args_row, kwargs_row, scalar_row

from notifyq import names
from notifyq.models import (
    CancelResult,
    ClaimedJob,
    Inserted,
    Job,
    JobResult,
    JobStatus,
    LeaseState,
    Migration,
    NewJob,
    Outcome,
    QueueStats,
    Refill,
    Rescued,
    RetryResult,
    WorkerInfo,
    WorkerProbe,
)

R = TypeVar("R")

_HEADER = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Query(Generic[R]):
    """A statement ready to run: SQL bytes, bound parameters, and how to build each row."""

    name: str
    sql: bytes
    params: Mapping[str, Any] | None
    row: BaseRowFactory[R]
    # None: psycopg's prepare_threshold decides. False for multi-statement DDL, and for statements
    # joining unnest() of array parameters: a prepared statement's generic plan cannot see the
    # arrays' lengths and may nest-loop two "small" inputs that are really thousands of rows each
    # (a 13,500-outcome finish took seconds that way); a custom plan sees them and hashes. Nor may
    # a small batch be prepared: a generic plan built while the table was empty (a new database, a
    # TRUNCATE) scans every row of it on each later run, as it grows (a 3-outcome finish took
    # 32 ms on 20,000 jobs so, against 0.2). Its parse and plan cost the server about 0.4 ms a write.
    prepare: bool | None = None


@functools.cache
def statement_texts() -> Mapping[str, str]:
    """Every named statement of notifyq/sql/*.sql, unrendered."""
    texts: dict[str, str] = {}
    for entry in sorted(resources.files("notifyq.sql").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            texts.update(_split(entry.read_text(encoding="utf-8")))
    return texts


def _split(text: str) -> dict[str, str]:
    parts = _HEADER.split(text)
    # split() with a group alternates: preamble, name, body, name, body …
    return {name: _without_doc(body) for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def _without_doc(body: str) -> str:
    """A statement without the comment lines that open it: they document it in its file; sent
    along, they took up to a kilobyte of every round trip and filled pg_stat_activity's query
    text (1,024 bytes by default) before the SQL began."""
    lines = body.strip().splitlines()
    while lines and lines[0].lstrip().startswith("--"):
        lines.pop(0)
    return "\n".join(lines).strip()


def render(text: str, schema: str) -> bytes:
    """Put the schema into a statement or migration: as an identifier, and as a literal."""
    composed = sql.SQL(text).format(schema=sql.Identifier(schema), schema_literal=sql.Literal(schema))
    return composed.as_bytes(None)


class Statements:
    """All statements rendered for one schema."""

    def __init__(self, schema: str) -> None:
        self.schema = names.schema_name(schema)
        self._sql = {name: render(text, schema) for name, text in statement_texts().items()}

    def sql(self, name: str) -> bytes:
        return self._sql[name]

    def query(
        self,
        name: str,
        params: Mapping[str, Any] | None,
        row: BaseRowFactory[R],
        *,
        prepare: bool | None = None,
    ) -> Query[R]:
        return Query(name=name, sql=self._sql[name], params=params, row=row, prepare=prepare)


@functools.cache
def statements(schema: str) -> Statements:
    return Statements(schema)


# -- executors ---------------------------------------------------------------------------------


async def fetch_all(conn: AsyncConnection[Any], query: Query[R]) -> list[R]:
    async with conn.cursor(row_factory=query.row) as cur:
        await cur.execute(query.sql, query.params, prepare=query.prepare)
        return await cur.fetchall() if cur.description is not None else []


async def fetch_one(conn: AsyncConnection[Any], query: Query[R]) -> R | None:
    rows = await fetch_all(conn, query)
    return rows[0] if rows else None


def fetch_all_sync(conn: Connection[Any], query: Query[R]) -> list[R]:
    with conn.cursor(row_factory=query.row) as cur:
        cur.execute(query.sql, query.params, prepare=query.prepare)
        return cur.fetchall() if cur.description is not None else []


def fetch_one_sync(conn: Connection[Any], query: Query[R]) -> R | None:
    rows = fetch_all_sync(conn, query)
    return rows[0] if rows else None


# -- row factories -----------------------------------------------------------------------------


def _struct_row(cls: type[R]) -> BaseRowFactory[R]:
    def build(**values: Any) -> R:
        return msgspec.convert(values, cls)

    return kwargs_row(build)


_id_row: BaseRowFactory[int] = scalar_row


def _inserted(job_id: int, handed_over: bool = False, *_notified: Any) -> Inserted:
    # the plain inserts return the id alone: only the hand-over insert hands over by itself
    return Inserted(job_id, handed_over)


_inserted_row: BaseRowFactory[Inserted] = args_row(_inserted)
_job_row = _struct_row(Job)
_refill_row = _struct_row(Refill)


def _pair_row(job_id: int, key: str | None) -> tuple[int, str | None]:
    return (job_id, key)


# -- jobs: the client ---------------------------------------------------------------------------


def job_insert(st: Statements, *, job: NewJob, hand_over: bool = False) -> Query[Inserted]:
    """Insert one job; with `hand_over` (unkeyed jobs only), hand it to an armed worker in the
    insert itself when one has a slot (migrations/0010), else the insert trigger does."""
    params = {
        "queue": job.queue,
        "task": job.task,
        "payload": job.payload,
        "priority": job.priority,
        "max_attempts": job.max_attempts,
        "run_at": job.run_at,
        "delay": job.delay,
    }
    if job.idempotency_key is None:
        return st.query("job_insert_hand_over" if hand_over else "job_insert_unkeyed", params, _inserted_row)
    return st.query("job_insert", {**params, "idempotency_key": job.idempotency_key}, _inserted_row)


def job_insert_many(st: Statements, *, jobs: Sequence[NewJob]) -> Query[tuple[int, str | None]]:
    params: dict[str, Any] = {
        "queues": [j.queue for j in jobs],
        "tasks": [j.task for j in jobs],
        "payloads": [j.payload for j in jobs],
        "priorities": [j.priority for j in jobs],
        "max_attempts": [j.max_attempts for j in jobs],
        "run_ats": [j.run_at for j in jobs],
        "delays": [j.delay for j in jobs],
        "keys": [j.idempotency_key for j in jobs],
    }
    keyed = any(j.idempotency_key is not None for j in jobs)
    name = "job_insert_many" if keyed else "job_insert_many_unkeyed"
    if not keyed:
        del params["keys"]
    return st.query(name, params, args_row(_pair_row), prepare=False)


def job_ids_reserve(st: Statements, *, count: int) -> Query[int]:
    return st.query("job_ids_reserve", {"count": count}, _id_row)


class Timing(Protocol):
    """What decides whether a job can be COPYed: a `NewJob`, or the `JobSpec` it is built from."""

    @property
    def run_at(self) -> datetime | None: ...
    @property
    def delay(self) -> float | None: ...
    @property
    def idempotency_key(self) -> str | None: ...


def copyable(jobs: Iterable[Timing]) -> bool:
    """Jobs the COPY path can take: due now, no idempotency key (the common bulk case)."""
    return all(j.idempotency_key is None and j.run_at is None and not j.delay for j in jobs)


def job_copy_rows(jobs: Iterable[NewJob], ids: Sequence[int]) -> Iterator[tuple[Any, ...]]:
    """COPY rows, as lazy as `jobs`: a job that fails to build stops the COPY where it stands."""
    for i, j in zip(ids, jobs, strict=True):
        yield (i, j.queue, j.task, j.payload, j.priority, j.max_attempts)


async def copy_rows(
    conn: AsyncConnection[Any], st: Statements, name: str, rows: Iterable[tuple[Any, ...]]
) -> None:
    """COPY `rows` in with the named COPY statement; psycopg sends them as its buffer fills, so
    the server inserts while later rows are still being made. An exception from `rows` aborts the
    COPY (nothing of it is inserted) and propagates."""
    async with conn.cursor() as cur, cur.copy(st.sql(name)) as copy:
        for row in rows:
            await copy.write_row(row)


def copy_rows_sync(conn: Connection[Any], st: Statements, name: str, rows: Iterable[tuple[Any, ...]]) -> None:
    with conn.cursor() as cur, cur.copy(st.sql(name)) as copy:
        for row in rows:
            copy.write_row(row)


def job_ids_by_idempotency_key(st: Statements, *, keys: Sequence[str]) -> Query[tuple[int, str | None]]:
    return st.query("job_ids_by_idempotency_key", {"keys": list(keys)}, args_row(_pair_row))


def job_get(st: Statements, *, job_id: int) -> Query[Job]:
    return st.query("job_get", {"id": job_id}, _job_row)


def job_list(
    st: Statements,
    *,
    queue: str | None,
    task: str | None,
    status: JobStatus | None,
    before: int | None,
    limit: int,
) -> Query[Job]:
    params = {
        "queue": queue,
        "task": task,
        "status": None if status is None else status.value,
        "before": before,
        "limit": limit,
    }
    return st.query("job_list", params, _job_row)


def job_cancel(st: Statements, *, job_id: int, reason: str | None) -> Query[CancelResult]:
    params = {"id": job_id, "reason": reason, "channel": names.cancel_channel(st.schema)}

    def build(id: int, status: str, requested: bool) -> CancelResult:
        return CancelResult(job_id=id, status=JobStatus(status), requested=requested)

    return st.query("job_cancel", params, args_row(build))


def job_retry(st: Statements, *, job_id: int) -> Query[RetryResult]:
    def build(id: int, previous: str, retried: bool) -> RetryResult:
        return RetryResult(job_id=id, previous=JobStatus(previous), retried=retried)

    return st.query("job_retry", {"id": job_id}, args_row(build))


def queue_stats(st: Statements) -> Query[QueueStats]:
    return st.query("queue_stats", None, _struct_row(QueueStats))


# -- jobs: the worker --------------------------------------------------------------------------


def job_claim_batch(
    st: Statements, *, worker: uuid.UUID, queues: Sequence[str], limit: int, lease: float
) -> Query[ClaimedJob]:
    params: dict[str, Any] = {"worker": worker, "limit": limit, "lease": lease}
    if len(queues) == 1:
        name, params["queue"] = "job_claim_batch_one", queues[0]
    else:
        name, params["queues"] = "job_claim_batch", list(queues)
    # built directly (no msgspec.convert): the hot path, and every column already has its type
    return st.query(name, params, kwargs_row(ClaimedJob))


def job_finish_many(st: Statements, *, worker: uuid.UUID, results: Sequence[JobResult]) -> Query[int]:
    """Write `results` for `worker`; a batch of plain successes takes the shorter statement."""
    params: dict[str, Any] = {
        "worker": worker,
        "ids": [r.job_id for r in results],
        "attempts": [r.attempt for r in results],
    }
    if all(r.outcome is Outcome.SUCCEEDED and r.error is None for r in results):
        return st.query("job_succeed_many", params, _id_row, prepare=False)
    params["outcomes"] = [r.outcome.value for r in results]
    params["errors"] = [r.error for r in results]
    params["retry_in"] = [r.retry_in for r in results]
    return st.query("job_finish_many", params, _id_row, prepare=False)


def queue_wait(
    st: Statements,
    *,
    worker: uuid.UUID,
    queues: Sequence[str],
    slots: int = 0,
    lease: float | None = None,
    channel: str | None = None,
) -> Query[Any]:
    """Arm `worker` on `queues`; with `slots` > 0 producers may also hand it that many jobs per
    queue, leased for `lease` seconds, on `channel` (migrations/0008_hand_over.sql)."""
    params = {"worker": worker, "queues": list(queues), "slots": slots, "lease": lease, "channel": channel}
    return st.query("queue_wait", params, scalar_row)


def demand_renew(st: Statements) -> Query[Any]:
    """Keep producers looking for waiting workers for another second (migrations/0011)."""
    return st.query("demand_renew", None, scalar_row)


def queue_refill(
    st: Statements, *, worker: uuid.UUID, slots: int | None, queues: Sequence[str]
) -> Query[Refill]:
    """Refill the worker's armed rows to `slots` (None: refill nothing) and probe for a due job."""
    return st.query("queue_refill", {"worker": worker, "slots": slots, "queues": list(queues)}, _refill_row)


def queue_unwait(st: Statements, *, worker: uuid.UUID) -> Query[Any]:
    return st.query("queue_unwait", {"worker": worker}, scalar_row)


def job_leased_to(st: Statements, *, worker: uuid.UUID) -> Query[ClaimedJob]:
    return st.query("job_leased_to", {"worker": worker}, kwargs_row(ClaimedJob))


def lease_extend_many(
    st: Statements, *, worker: uuid.UUID, held: Sequence[tuple[int, int]], lease: float
) -> Query[LeaseState]:
    params = {
        "worker": worker,
        "ids": [job_id for job_id, _ in held],
        "attempts": [attempt for _, attempt in held],
        "lease": lease,
    }

    def build(id: int, cancel_requested: bool) -> LeaseState:
        return LeaseState(job_id=id, cancel_requested=cancel_requested)

    return st.query("lease_extend_many", params, args_row(build), prepare=False)


# -- migrations --------------------------------------------------------------------------------


def migration_lock(st: Statements, *, key: int) -> Query[Any]:
    return st.query("migration_lock", {"key": key}, scalar_row)


def migration_table_create(st: Statements) -> Query[Any]:
    query = st.query("migration_table_create", None, scalar_row)
    return Query(name=query.name, sql=query.sql, params=None, row=scalar_row, prepare=False)


def migration_list(st: Statements) -> Query[Migration]:
    return st.query("migration_list", None, _struct_row(Migration))


def migration_record(st: Statements, *, migration: Migration) -> Query[Any]:
    params = {"version": migration.version, "name": migration.name, "checksum": migration.checksum}
    return st.query("migration_record", params, scalar_row)


def migration_apply(schema: str, *, text: str) -> Query[Any]:
    """A migration file's DDL, rendered for `schema` (migrations are not named statements)."""
    return Query(name="migration_apply", sql=render(text, schema), params=None, row=scalar_row, prepare=False)


# -- the listener's session ----------------------------------------------------------------------


def channel_listen(channel: str) -> Query[Any]:
    """LISTEN on a channel built by notifyq.names (a quoted identifier, never a parameter)."""
    text = sql.SQL("LISTEN {}").format(sql.Identifier(channel)).as_bytes(None)
    return Query(name="channel_listen", sql=text, params=None, row=scalar_row, prepare=False)


def session_check() -> Query[Any]:
    """A round trip proving the listener's session is alive (notifies() alone cannot tell)."""
    return Query(name="session_check", sql=b"SELECT 1", params=None, row=scalar_row, prepare=False)


def _set_config(name: str, setting: str, value: str, *, local: bool) -> Query[Any]:
    """One server setting for this session or (`local`) this transaction, as a bound value."""
    sql = b"SELECT set_config(%(setting)s, %(value)s, %(local)s)"
    params = {"setting": setting, "value": value, "local": local}
    return Query(name=name, sql=sql, params=params, row=scalar_row, prepare=False)


def session_idle_timeout(seconds: float) -> Query[Any]:
    """Have the server close this session once it sits idle `seconds` (`idle_session_timeout`)."""
    ms = f"{int(seconds * 1000)}ms"
    return _set_config("session_idle_timeout", "idle_session_timeout", ms, local=False)


def synchronous_commit(*, on: bool, local: bool) -> Query[Any]:
    """Whether commits wait for their WAL flush, for this session or (`local`) this transaction."""
    return _set_config("synchronous_commit", "synchronous_commit", "on" if on else "off", local=local)


# -- the workers registry and the leader --------------------------------------------------------


def worker_register(
    st: Statements,
    *,
    worker_id: uuid.UUID,
    host: str,
    pid: int,
    queues: Sequence[str],
    concurrency: int,
    lock_key: int,
) -> Query[Any]:
    params = {
        "id": worker_id,
        "host": host,
        "pid": pid,
        "queues": list(queues),
        "concurrency": concurrency,
        "lock_key": lock_key,
    }
    return st.query("worker_register", params, scalar_row)


def worker_lock(st: Statements, *, lock_key: int) -> Query[Any]:
    return st.query("worker_lock", {"lock_key": lock_key}, scalar_row)


def worker_lock_takeover(st: Statements, *, lock_key: int) -> Query[Any]:
    return st.query("worker_lock_takeover", {"lock_key": lock_key}, scalar_row, prepare=False)


def worker_beat(st: Statements, *, worker_id: uuid.UUID) -> Query[Any]:
    return st.query("worker_beat", {"id": worker_id}, scalar_row)


def worker_delete(st: Statements, *, worker_id: uuid.UUID) -> Query[Any]:
    return st.query("worker_delete", {"id": worker_id}, scalar_row)


def lock_timeout_local(st: Statements, *, seconds: float) -> Query[Any]:
    return st.query("lock_timeout_local", {"ms": str(max(int(seconds * 1000), 1))}, scalar_row)


def worker_list(st: Statements) -> Query[WorkerInfo]:
    return st.query("worker_list", None, _struct_row(WorkerInfo))


def worker_probe(st: Statements, *, grace: float) -> Query[WorkerProbe]:
    return st.query("worker_probe", {"grace": grace}, _struct_row(WorkerProbe))


def worker_delete_many(st: Statements, *, worker_ids: Sequence[uuid.UUID]) -> Query[Any]:
    return st.query("worker_delete_many", {"ids": list(worker_ids)}, scalar_row)


def leader_try_lock(st: Statements, *, key: int) -> Query[bool]:
    return st.query("leader_try_lock", {"key": key}, scalar_row)


def leader_mark(st: Statements, *, worker_id: uuid.UUID) -> Query[Any]:
    return st.query("leader_mark", {"id": worker_id}, scalar_row)


def job_rescue_many(st: Statements, *, dead: Sequence[uuid.UUID], limit: int) -> Query[Rescued]:
    return st.query("job_rescue_many", {"dead": list(dead), "limit": limit}, _struct_row(Rescued))


def job_prune_batch(st: Statements, *, keep_done: float, keep_failed: float, limit: int) -> Query[int]:
    params = {"keep_done": keep_done, "keep_failed": keep_failed, "limit": limit}
    return st.query("job_prune_batch", params, _id_row)


def cron_state_get(st: Statements, *, tasks: Sequence[str]) -> Query[tuple[str, datetime]]:
    def build(task: str, last_slot: datetime) -> tuple[str, datetime]:
        return (task, last_slot)

    return st.query("cron_state_get", {"tasks": list(tasks)}, args_row(build))


def cron_state_advance(st: Statements, *, slots: Mapping[str, datetime]) -> Query[Any]:
    return st.query("cron_state_advance", {"tasks": list(slots), "slots": list(slots.values())}, scalar_row)


def database_now(st: Statements) -> Query[datetime]:
    return st.query("database_now", None, scalar_row)


def notification_queue_usage(st: Statements) -> Query[float]:
    return st.query("notification_queue_usage", None, scalar_row)


def notification_queue_blockers(st: Statements) -> Query[tuple[int, str, bool]]:
    """(pid, application_name, ours) of sessions stuck sending to their client."""

    def build(pid: int, application_name: str, ours: bool) -> tuple[int, str, bool]:
        return (pid, application_name, ours)

    return st.query("notification_queue_blockers", None, args_row(build), prepare=False)


def backends_terminate(st: Statements, *, pids: Sequence[int]) -> Query[Any]:
    return st.query("backends_terminate", {"pids": list(pids)}, scalar_row, prepare=False)
