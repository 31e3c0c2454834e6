"""Hostile input against a real database: every bad name, key or payload is refused with a clear error,
writes nothing, and leaves the client usable for the next, normal caller."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifyq import SyncClient
from notifyq.errors import InvalidNameError, NotifyqError, PayloadError
from notifyq.names import MAX_QUEUE_LENGTH, MAX_TASK_LENGTH
from notifyq.tasks import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_PAYLOAD_BYTES

_QUEUE_OK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,39}")
_TASK_OK = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,199}")

SQL_FRAGMENTS = [
    "q'; DROP TABLE notifyq.jobs; --",
    'q"; NOTIFY x; --',
    "q) OR 1=1 --",
    "$$; SELECT pg_sleep(10); $$",
    "q\x00tail",
    "\udcff",  # a lone surrogate: what os.fsdecode makes of non-UTF-8 bytes
    "é",
    "",
    " ",
    "q:cancel",
    "q!cancel",
    "x" * (MAX_QUEUE_LENGTH + 1),
]

hostile_text = st.one_of(
    st.sampled_from(SQL_FRAGMENTS),
    st.text(min_size=0, max_size=300),
    st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
# Each example reuses the test's one database: no row may appear, so sharing it is the point.
examples = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _row_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM notifyq.jobs").fetchone()
    assert row is not None
    return int(row[0])


def _still_serves_normal_callers(client: SyncClient, database_url: str, before: int) -> None:
    assert _row_count(database_url) == before
    job_id = client.enqueue("normal.task", {"ok": True}, queue="default")
    assert client.get(job_id).task == "normal.task"


@examples
@given(queue=hostile_text)
def test_hostile_queue_names_are_refused_without_a_write(
    sync_client: SyncClient, database_url: str, queue: str
) -> None:
    before = _row_count(database_url)
    if _QUEUE_OK.fullmatch(queue):
        sync_client.enqueue("t", None, queue=queue)
        return
    with pytest.raises(InvalidNameError, match="queue"):
        sync_client.enqueue("t", None, queue=queue)
    _still_serves_normal_callers(sync_client, database_url, before)


@examples
@given(task=hostile_text)
def test_hostile_task_names_are_refused_without_a_write(
    sync_client: SyncClient, database_url: str, task: str
) -> None:
    before = _row_count(database_url)
    if _TASK_OK.fullmatch(task):
        sync_client.enqueue(task, None)
        return
    with pytest.raises(InvalidNameError, match="task"):
        sync_client.enqueue(task, None)
    _still_serves_normal_callers(sync_client, database_url, before)


def test_task_names_at_the_length_limit_pass_and_one_more_fails(sync_client: SyncClient) -> None:
    assert sync_client.enqueue("t" * MAX_TASK_LENGTH, None) > 0
    with pytest.raises(InvalidNameError):
        sync_client.enqueue("t" * (MAX_TASK_LENGTH + 1), None)


@pytest.mark.parametrize(
    "key",
    ["", "k" * (MAX_IDEMPOTENCY_KEY_LENGTH + 1), "a\x00b", "\x00"],
)
def test_idempotency_keys_past_their_limits_are_refused(
    sync_client: SyncClient, database_url: str, key: str
) -> None:
    with pytest.raises(NotifyqError, match="idempotency_key"):
        sync_client.enqueue("t", None, idempotency_key=key)
    _still_serves_normal_callers(sync_client, database_url, 0)


def test_idempotency_keys_at_their_limits_are_kept_exactly(sync_client: SyncClient) -> None:
    longest = MAX_IDEMPOTENCY_KEY_LENGTH
    for key in ["k", "k" * longest, "'; DROP TABLE x; --", "é" * longest]:
        first = sync_client.enqueue("t", None, idempotency_key=key)
        assert sync_client.enqueue("t", None, idempotency_key=key) == first
        assert sync_client.get(first).idempotency_key == key


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("x" * MAX_PAYLOAD_BYTES, id="over-1MiB"),
        pytest.param(_nested(100_000), id="too-deep"),
        pytest.param({"s": "\udcff"}, id="lone-surrogate"),
        pytest.param({1: object()}, id="unencodable"),
    ],
)
def test_payloads_too_large_deep_or_unencodable_are_refused(
    sync_client: SyncClient, database_url: str, payload: Any
) -> None:
    with pytest.raises(PayloadError):
        sync_client.enqueue("t", payload)
    _still_serves_normal_callers(sync_client, database_url, 0)
