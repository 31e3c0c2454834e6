"""Structs shared by every part of notifyq: what a job is, and what queries return.

This module imports nothing of notifyq, so any module may import it.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import msgspec


class JobStatus(enum.StrEnum):
    """Where a job is in its life. The last three are final: a job finishes exactly once."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobError(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a job's error history."""

    attempt: int
    at: datetime
    error: str


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A row of the jobs table, as the client reports it."""

    id: int
    queue: str
    task: str
    payload: Any
    status: JobStatus
    priority: int
    attempts: int
    max_attempts: int
    run_at: datetime
    lease_holder: uuid.UUID | None
    lease_expires_at: datetime | None
    last_error: str | None
    errors: list[JobError]
    idempotency_key: str | None
    cancel_requested_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class NewJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job about to be inserted: names validated, payload already encoded as JSON text."""

    queue: str
    task: str
    payload: str
    priority: int = 0
    max_attempts: int
    run_at: datetime | None = None
    # seconds from the database's now(); used when run_at is None
    delay: float | None = None
    idempotency_key: str | None = None


class ClaimedJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job a worker has just claimed; `payload` is still JSON text, decoded by its task's type."""

    id: int
    queue: str
    task: str
    payload: str
    attempts: int
    max_attempts: int
    priority: int
    run_at: datetime
    created_at: datetime
    lease_expires_at: datetime

    def waited(self, lease: float) -> float:
        """Seconds from due (run_at) to claimed, on the database clock: the claim set
        lease_expires_at = now() + lease."""
        return max((self.lease_expires_at - self.run_at).total_seconds() - lease, 0.0)


class _HandedOver(msgspec.Struct, frozen=True, kw_only=True):
    """A job as the insert trigger hands it over (migrations/0008_hand_over.sql): the claim's
    columns as JSON, the payload embedded as it is stored."""

    id: int
    queue: str
    task: str
    payload: msgspec.Raw
    attempts: int
    max_attempts: int
    priority: int
    run_at: datetime
    created_at: datetime
    lease_expires_at: datetime


_hand_over_decoder = msgspec.json.Decoder(_HandedOver)


def decode_hand_over(message: str) -> ClaimedJob:
    """The job in a hand-over notification; msgspec.DecodeError if the message is not one."""
    h = _hand_over_decoder.decode(message)
    return ClaimedJob(
        id=h.id, queue=h.queue, task=h.task, payload=bytes(h.payload).decode(), attempts=h.attempts,
        max_attempts=h.max_attempts, priority=h.priority, run_at=h.run_at, created_at=h.created_at,
        lease_expires_at=h.lease_expires_at,
    )  # fmt: skip


class Inserted(msgspec.Struct, frozen=True):
    """A job an enqueue wrote, and whether the client's hand-over insert itself gave it to a worker
    as running (False for other inserts, even when the trigger then hands the job over)."""

    id: int
    handed_over: bool


class Refill(msgspec.Struct, frozen=True, kw_only=True):
    """What refilling a worker's hand-over slots did: the queues whose slots it reset, and the
    seconds until the earliest job queued on the worker's queues is due (<= 0: one is due now,
    which no producer told the worker of; None: none is queued)."""

    queues: list[str]
    next_in: float | None

    @property
    def waiting(self) -> bool:
        """A job due now waits queued."""
        return self.next_in is not None and self.next_in <= 0


class Outcome(enum.StrEnum):
    """What a worker writes back for a job it ran."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRY = "retry"
    # hand the lease back untouched: shutdown; the attempt does not count
    RELEASE = "release"


class JobResult(msgspec.Struct, frozen=True, kw_only=True):
    """One finished run, buffered by the completer and written in a batch."""

    job_id: int
    attempt: int
    outcome: Outcome
    error: str | None = None
    retry_in: float = 0.0


class CancelResult(msgspec.Struct, frozen=True, kw_only=True):
    """What `cancel` did: `status` is the job's status after the call, `None` for an unknown id."""

    job_id: int
    status: JobStatus | None
    requested: bool = False


class RetryResult(msgspec.Struct, frozen=True, kw_only=True):
    """What `retry` did: the status the job had, and whether it went back to queued."""

    job_id: int
    previous: JobStatus
    retried: bool


class LeaseState(msgspec.Struct, frozen=True, kw_only=True):
    """A lease the heartbeat extended, and whether a cancel was requested for that job."""

    job_id: int
    cancel_requested: bool


class Migration(msgspec.Struct, frozen=True, kw_only=True):
    """A migration file, or the record of one applied."""

    version: int
    name: str
    checksum: str


class QueueStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counts by status for one queue, and the age of its oldest due job."""

    queue: str
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    oldest_due_age: float | None = None
    # jobs that finished (any outcome) in the last minute: recent throughput
    finished_last_minute: int = 0


class WorkerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A row of the workers registry, with how many jobs it runs now."""

    id: uuid.UUID
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    last_beat_at: datetime
    leader_since: datetime | None
    running: int


class WorkerProbe(msgspec.Struct, frozen=True, kw_only=True):
    """Whether a registered worker's advisory lock was free (its session is gone)."""

    id: uuid.UUID
    lock_free: bool


class Rescued(msgspec.Struct, frozen=True, kw_only=True):
    """A job the leader took back from a dead or silent worker, and what it became."""

    id: int
    status: JobStatus
