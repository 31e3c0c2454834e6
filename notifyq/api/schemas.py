"""Request and response bodies of the HTTP API (msgspec Structs; Litestar validates and documents them)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from notifyq.models import Job, QueueStats, WorkerInfo

Seconds = Annotated[float, msgspec.Meta(ge=0, le=86_400)]
LeaseSeconds = Annotated[float, msgspec.Meta(ge=1, le=86_400)]
MAX_LEASE_WAIT = 30.0
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class EnqueueRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    task: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    payload: Any = None
    queue: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    priority: Annotated[int, msgspec.Meta(ge=-32768, le=32767)] | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    delay: Seconds | None = None
    run_at: datetime | None = None


class Enqueued(msgspec.Struct, kw_only=True):
    id: int


class JobPage(msgspec.Struct, kw_only=True):
    jobs: list[Job]
    next_cursor: str | None


class CancelResponse(msgspec.Struct, kw_only=True):
    id: int
    status: str
    requested: bool


class RetryResponse(msgspec.Struct, kw_only=True):
    id: int
    previous: str
    status: str


class LeaseRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    queues: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=200)]],
        msgspec.Meta(min_length=1, max_length=50),
    ]
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    lease_seconds: LeaseSeconds = 30.0
    wait: Annotated[float, msgspec.Meta(ge=0, le=MAX_LEASE_WAIT)] = 0.0


class LeasedJob(msgspec.Struct, kw_only=True):
    id: int
    queue: str
    task: str
    payload: Any
    attempt: int
    max_attempts: int
    lease_expires_at: datetime
    token: str


class LeaseResponse(msgspec.Struct, kw_only=True):
    jobs: list[LeasedJob]


class TokenRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class FailRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    reason: Annotated[str, msgspec.Meta(max_length=10_000)] = ""
    # None: no retry (the job fails); else retried after this many seconds while attempts remain
    retry_in: Seconds | None = None


class HeartbeatRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    lease_seconds: LeaseSeconds = 30.0


class Finished(msgspec.Struct, kw_only=True):
    id: int
    ok: bool


class HeartbeatResponse(msgspec.Struct, kw_only=True):
    id: int
    cancel_requested: bool


class QueuesResponse(msgspec.Struct, kw_only=True):
    queues: list[QueueStats]
    notification_queue_usage: float


class WorkersResponse(msgspec.Struct, kw_only=True):
    workers: list[WorkerInfo]


class Health(msgspec.Struct, kw_only=True):
    status: str


# -- opaque strings -----------------------------------------------------------------------------


def encode_token(holder: uuid.UUID, attempt: int) -> str:
    return base64.urlsafe_b64encode(f"{holder.hex}:{attempt}".encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[uuid.UUID, int] | None:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        holder, attempt = text.split(":")
        return uuid.UUID(hex=holder), int(attempt)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def encode_cursor(before: int) -> str:
    return base64.urlsafe_b64encode(f"b:{before}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = text.split(":")
        before = int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return before if kind == "b" and before > 0 else None
