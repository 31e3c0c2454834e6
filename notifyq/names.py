"""Validation of the names that reach SQL or a channel, and the one place channel names are built.

A LISTEN channel is an identifier of at most 63 bytes. Channels are "<schema>:<queue>", so schema
names are limited to 20 characters and queue names to 40: every channel fits, whatever the pair.
The database enforces the same queue and task formats with CHECK constraints, so a row inserted by
plain SQL cannot carry a name that would break the NOTIFY trigger.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid

from notifyq.errors import InvalidNameError

MAX_SCHEMA_LENGTH = 20
MAX_QUEUE_LENGTH = 40
MAX_TASK_LENGTH = 200

_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,19}")
_QUEUE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,39}")
_TASK_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,199}")

CANCEL_CHANNEL_SUFFIX = "!cancel"
HAND_OVER_CHANNEL_INFIX = "!w"


def _check(kind: str, name: object, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(name, str) or pattern.fullmatch(name) is None:
        raise InvalidNameError(kind, name, rule)
    return name


def schema_name(name: object) -> str:
    rule = f"1-{MAX_SCHEMA_LENGTH} characters of a-z, 0-9 and _, not starting with a digit"
    return _check("schema", name, _SCHEMA_RE, rule)


_QUEUE_RULE = (
    f"1-{MAX_QUEUE_LENGTH} characters of A-Z, a-z, 0-9, '_', '.' and '-', not starting with '.' or '-'"
)
_TASK_RULE = (
    f"1-{MAX_TASK_LENGTH} characters of A-Z, a-z, 0-9, '_', '.', ':' and '-', starting with a letter or '_'"
)


def queue_name(name: object) -> str:
    if isinstance(name, str):
        return _valid_queue(name)
    return _check("queue", name, _QUEUE_RE, _QUEUE_RULE)


def task_name(name: object) -> str:
    if isinstance(name, str):
        return _valid_task(name)
    return _check("task", name, _TASK_RE, _TASK_RULE)


# bulk enqueues check the same few names again and again; only valid names are cached
@functools.lru_cache(maxsize=4096)
def _valid_queue(name: str) -> str:
    return _check("queue", name, _QUEUE_RE, _QUEUE_RULE)


@functools.lru_cache(maxsize=4096)
def _valid_task(name: str) -> str:
    return _check("task", name, _TASK_RE, _TASK_RULE)


def queue_channel(schema: str, queue: str) -> str:
    """The channel the insert trigger notifies for `queue` (see migrations/0001_initial.sql)."""
    return f"{schema_name(schema)}:{queue_name(queue)}"


def cancel_channel(schema: str) -> str:
    """The channel on which `cancel` tells workers that a running job should stop."""
    return f"{schema_name(schema)}{CANCEL_CHANNEL_SUFFIX}"


def hand_over_channel(schema: str, worker_id: uuid.UUID) -> str:
    """The worker's own channel, on which producers hand it jobs (migrations/0008_hand_over.sql):
    at most 20 + 2 + 32 = 54 bytes."""
    return f"{schema_name(schema)}{HAND_OVER_CHANNEL_INFIX}{worker_id.hex}"


def migration_lock_key(schema: str) -> int:
    """The advisory lock key under which migrations of `schema` run (stable across processes)."""
    return _stable_key("migrate", schema)


def worker_lock_key(worker_id: object) -> int:
    """The session advisory lock a worker holds on its listening connection while it lives."""
    return _stable_key("worker", str(worker_id))


def leader_lock_key(schema: str) -> int:
    """The session advisory lock whose holder is the leader for `schema`."""
    return _stable_key("leader", schema)


def _stable_key(purpose: str, value: str) -> int:
    # hashlib, not hash(): Python salts str hashes per process
    digest = hashlib.blake2b(f"notifyq:{purpose}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
