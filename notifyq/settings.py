"""Settings: frozen, keyword-only Structs, validated when built, from code or the environment.

A bad value fails at start-up with a `ConfigError` naming the field, never later in a worker loop.
Environment variables are NOTIFYQ_<FIELD> (NOTIFYQ_CONCURRENCY=20); the database URL also falls back
to DATABASE_URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Self, TypeVar

import msgspec

from notifyq import names
from notifyq.errors import ConfigError, InvalidNameError

DEFAULT_SCHEMA = "notifyq"
DEFAULT_QUEUE = "default"
DEFAULT_CONCURRENCY = 10
DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_LEASE = 30.0
DEFAULT_SHUTDOWN_TIMEOUT = 10.0
DEFAULT_FLUSH_INTERVAL = 0.005
DEFAULT_FLUSH_BATCH = 200
DEFAULT_CLAIM_LINGER = 0.001
DEFAULT_HAND_OVER_MAX_RATE = 2000.0
DEFAULT_RECHECK_AFTER = 0.05
DEFAULT_DB_TIMEOUT = 10.0
DEFAULT_POOL_MAX = 10
DEFAULT_LEADER_TICK = 0.5
DEFAULT_LEADER_IDLE_TIMEOUT = 10.0
DEFAULT_RESCUE_GRACE = 10.0
DEFAULT_DEAD_CONFIRM = 1.0
DEFAULT_RETENTION_SUCCEEDED = 86_400.0
DEFAULT_RETENTION_FAILED = 7 * 86_400.0
DEFAULT_PRUNE_INTERVAL = 60.0
DEFAULT_NOTIFY_QUEUE_WARN = 0.5

S = TypeVar("S", bound=msgspec.Struct)
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86_400)]


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to reach the database; shared by clients, workers and the CLI."""

    database_url: Annotated[str, msgspec.Meta(min_length=1)]
    # a direct (non-PgBouncer) URL for LISTEN and advisory locks; defaults to database_url
    listen_url: str | None = None
    schema: str = DEFAULT_SCHEMA
    # behind PgBouncer in transaction mode: no named prepared statements on pooled connections
    pgbouncer: bool = False
    pool_min_size: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 1
    pool_max_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = DEFAULT_POOL_MAX

    def __post_init__(self) -> None:
        _check_name("schema", names.schema_name, self.schema)
        if self.pool_min_size > self.pool_max_size:
            raise ConfigError("pool_min_size", "must not exceed pool_max_size")

    @property
    def direct_url(self) -> str:
        return self.listen_url or self.database_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Settings from NOTIFYQ_* variables (and DATABASE_URL), with `overrides` on top."""
        env = os.environ if env is None else env
        raw = _from_env(cls, env)
        if "database_url" not in raw and "DATABASE_URL" in env:
            raw["database_url"] = env["DATABASE_URL"]
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return build(cls, raw)


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How one worker process runs; every duration is in seconds."""

    queues: tuple[str, ...] = (DEFAULT_QUEUE,)
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = DEFAULT_CONCURRENCY
    # the safety net for lost notifications; not how jobs are normally found
    poll_interval: Seconds = DEFAULT_POLL_INTERVAL
    lease: Annotated[float, msgspec.Meta(ge=1, le=86_400)] = DEFAULT_LEASE
    shutdown_timeout: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = DEFAULT_SHUTDOWN_TIMEOUT
    flush_interval: Annotated[float, msgspec.Meta(gt=0, le=10)] = DEFAULT_FLUSH_INTERVAL
    flush_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = DEFAULT_FLUSH_BATCH
    # the ceiling of the listener's reconnect backoff
    reconnect_max_delay: Seconds = 5.0
    # False turns LISTEN off: the worker only polls (benchmarks compare the two)
    listen: bool = True
    # while jobs keep arriving (claims came back with jobs), an empty claim is retried after this
    # long instead of asking producers for a notification; 0 turns it off (see claimer.py)
    claim_linger: Annotated[float, msgspec.Meta(ge=0, le=1)] = DEFAULT_CLAIM_LINGER
    # while the worker waits, producers hand it jobs claimed in their own transaction (migrations/
    # 0008); past this many jobs a second it claims batches instead (a hand-over costs its producer a
    # NOTIFY); 0 turns hand-over off: producers only wake the worker
    hand_over_max_rate: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = DEFAULT_HAND_OVER_MAX_RATE
    # this long after the worker went to sleep (armed, its confirming claim empty), it asks whether
    # a due job waits queued that nobody told it of (a producer that looked for waiters before the
    # arm and committed after the confirming claim notified no one), and again at ten times that,
    # and so on until the poll. Such a job then waits about this long, not the poll, if its producer
    # committed by then, else about ten times as long as the producer stayed open; 0 turns it off
    recheck_after: Annotated[float, msgspec.Meta(ge=0, le=3600)] = DEFAULT_RECHECK_AFTER
    # False: the worker's own writes (claims, outcomes, lease renewals, maintenance) commit without
    # waiting for their WAL flush, which takes a disk flush off the path of every job. A database
    # crash can undo the last moments of them (3 x wal_writer_delay at most); the leases turn that
    # into a rerun, as after any worker crash: at-least-once holds. Enqueues, cron's included,
    # always wait for the flush. Ignored behind PgBouncer (pgbouncer=True) and with a pool passed in.
    synchronous_commit: bool = False
    # a worker statement (and its wait for a pooled connection) unanswered this long is abandoned
    # and retried on a new connection: a link that went silent without closing
    db_timeout: Annotated[float, msgspec.Meta(ge=0.1, le=3600)] = DEFAULT_DB_TIMEOUT
    # -- leader election and maintenance (notifyq/leader) ------------------------------------------
    # False: this worker never leads (another process runs the maintenance)
    leader: bool = True
    leader_tick: Annotated[float, msgspec.Meta(gt=0, le=60)] = DEFAULT_LEADER_TICK
    # the server closes a leader session that has not ticked for this long (a frozen process), so
    # another worker can lead; keep it well above leader_tick and any single maintenance step
    leader_idle_timeout: Annotated[float, msgspec.Meta(ge=1, le=3600)] = DEFAULT_LEADER_IDLE_TIMEOUT
    # after gaining leadership (e.g. after a database restart dropped every advisory lock), wait this
    # long before treating a free worker lock as a dead worker: workers need time to re-take them
    rescue_grace: Annotated[float, msgspec.Meta(ge=0, le=3600)] = DEFAULT_RESCUE_GRACE
    # a worker is dead when its lock was free on two probes at least this far apart
    dead_confirm: Annotated[float, msgspec.Meta(ge=0, le=600)] = DEFAULT_DEAD_CONFIRM
    retention_succeeded: Annotated[float, msgspec.Meta(ge=0)] = DEFAULT_RETENTION_SUCCEEDED
    retention_failed: Annotated[float, msgspec.Meta(ge=0)] = DEFAULT_RETENTION_FAILED
    prune_interval: Seconds = DEFAULT_PRUNE_INTERVAL
    # log a warning when pg_notification_queue_usage() passes this fraction
    notify_queue_warn: Annotated[float, msgspec.Meta(gt=0, le=1)] = DEFAULT_NOTIFY_QUEUE_WARN

    def __post_init__(self) -> None:
        if self.leader_idle_timeout < 2 * self.leader_tick:
            raise ConfigError("leader_idle_timeout", "must be at least twice leader_tick")
        if not self.queues:
            raise ConfigError("queues", "at least one queue is required")
        for queue in self.queues:
            _check_name("queues", names.queue_name, queue)
        if len(set(self.queues)) != len(self.queues):
            raise ConfigError("queues", "a queue is listed twice")

    @property
    def heartbeat_interval(self) -> float:
        return self.lease / 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        raw = _from_env(cls, os.environ if env is None else env)
        if isinstance(raw.get("queues"), str):
            raw["queues"] = split_queues(raw["queues"])
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return build(cls, raw)


def split_queues(text: str) -> tuple[str, ...]:
    """'a, b' -> ('a', 'b'): the form the CLI and the environment use."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def build(cls: type[S], raw: Mapping[str, Any]) -> S:
    """Build settings from loose values (strings from the environment are converted)."""
    try:
        return msgspec.convert(dict(raw), cls, strict=False)
    except msgspec.ValidationError as exc:
        field = _field_of(str(exc))
        raise ConfigError(field, str(exc)) from None


def _from_env(cls: type[msgspec.Struct], env: Mapping[str, str]) -> dict[str, Any]:
    fields = msgspec.structs.fields(cls)
    return {f.name: env[k] for f in fields if (k := f"NOTIFYQ_{f.name.upper()}") in env}


def _field_of(message: str) -> str:
    # msgspec names the failing path as "at `$.field`"
    marker = "`$."
    if marker not in message:
        return "settings"
    return message.split(marker, 1)[1].split("`", 1)[0].split("[", 1)[0]


def _check_name(field: str, check: Any, value: str) -> None:
    try:
        check(value)
    except InvalidNameError as exc:
        raise ConfigError(field, str(exc)) from None
