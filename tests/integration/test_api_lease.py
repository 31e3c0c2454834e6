"""Leases over HTTP for workers in other languages: long-poll woken by NOTIFY, ack, fail, heartbeat,
and tokens that no longer hold a job are refused without changing it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import psycopg
import pytest

from notifyq import Client, JobStatus, Settings
from tests.helpers import demand_lapsed, wait_until
from tests.integration.api_support import api_client, lease_one

pytestmark = pytest.mark.anyio


async def _long_poll(http: httpx.AsyncClient, result: dict[str, Any]) -> None:
    """A lease request on the default queue waiting up to 10 s: its jobs and how long it took."""
    started = time.monotonic()
    response = await http.post("/v1/lease", json={"queues": ["default"], "wait": 10})
    result["elapsed"] = time.monotonic() - started
    result["jobs"] = response.json()["jobs"]


async def _armed(aconn: psycopg.AsyncConnection) -> bool:
    """Whether a waiter (the API's long poll) has published its demand and is not woken yet."""
    row = await (
        await aconn.execute("SELECT count(*) FROM notifyq.queue_waiters WHERE woken_at IS NULL")
    ).fetchone()
    return row is not None and row[0] > 0


@asynccontextmanager
async def _waiting_long_poll(
    settings: Settings, aconn: psycopg.AsyncConnection
) -> AsyncIterator[dict[str, Any]]:
    """A long poll in flight, entered once it has published its demand; its result (`_long_poll`)
    is filled in when the block ends and the request has returned (15 s at most)."""
    result: dict[str, Any] = {}
    async with api_client(settings) as http:
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_long_poll, http, result)
                await wait_until(lambda: _armed(aconn))
                yield result


async def test_a_long_poll_lease_returns_soon_after_an_enqueue(
    settings: Settings, client: Client, aconn: psycopg.AsyncConnection
) -> None:
    """wait=10 s, a job enqueued while waiting: the lease returns well before the long-poll ends."""
    async with _waiting_long_poll(settings, aconn) as result:
        job_id = await client.enqueue("t", {"n": 1})
    jobs = result["jobs"]
    assert isinstance(jobs, list)
    assert [j["id"] for j in jobs] == [job_id]
    assert jobs[0]["payload"] == {"n": 1}
    assert isinstance(result["elapsed"], float)
    assert result["elapsed"] < 5


async def test_a_long_poll_waiting_past_the_demand_lease_is_still_woken_by_an_insert(
    settings: Settings, aconn: psycopg.AsyncConnection
) -> None:
    """Producers look for waiters only while the demand lease runs (a second from a renewal,
    migrations/0011): a waiting request renews it, so a plain insert wakes it however long it
    has waited. (Without a renewal the request would claim the job only at its end, 10 s on.)"""

    async def scalar(query: str) -> Any:
        row = await (await aconn.execute(query)).fetchone()
        return None if row is None else row[0]

    async with _waiting_long_poll(settings, aconn) as result:
        first_end = await scalar("SELECT pg_sequence_last_value('notifyq.demand_until')")

        async def past_it() -> bool:  # the lease its publication gave has run out
            return bool(await scalar(f"SELECT extract(epoch FROM clock_timestamp()) * 1000 > {first_end}"))

        await wait_until(past_it)
        cur = await aconn.execute("INSERT INTO notifyq.jobs (task) VALUES ('t') RETURNING id")
        inserted = await cur.fetchone()
    assert inserted is not None
    assert [j["id"] for j in result["jobs"]] == [inserted[0]]
    assert result["elapsed"] < 5


async def test_a_long_poll_that_stalled_past_the_demand_lease_claims_again_when_it_renews(
    settings: Settings, aconn: psycopg.AsyncConnection, database_url: str
) -> None:
    """The API's event loop stalls past the lease, and a producer meanwhile notifies nobody: the
    renewal after the stall comes too late to be sure of the lease, so the request claims again
    and returns the job, not at the end of its 10 s."""
    async with _waiting_long_poll(settings, aconn) as result:
        time.sleep(1.5)  # noqa: ASYNC251 - the stall, blocking on purpose
        with psycopg.connect(database_url, autocommit=True) as producer:
            insert = "INSERT INTO notifyq.jobs (task) VALUES ('t') RETURNING id"
            inserted = producer.execute(insert).fetchone()
            lapsed = demand_lapsed(producer)
    assert lapsed  # so the insert notified nobody
    assert inserted is not None
    assert [j["id"] for j in result["jobs"]] == [inserted[0]]
    assert result["elapsed"] < 5


async def test_an_empty_lease_without_wait_returns_no_jobs(settings: Settings) -> None:
    async with api_client(settings) as http:
        response = await http.post("/v1/lease", json={"queues": ["default"]})
    assert response.status_code == 200
    assert response.json() == {"jobs": []}


async def test_ack_finishes_the_job_once(settings: Settings, client: Client) -> None:
    job_id = await client.enqueue("t")
    async with api_client(settings) as http:
        leased = await lease_one(http, limit=5)
        first = await http.post(f"/v1/jobs/{job_id}/ack", json={"token": leased["token"]})
        second = await http.post(f"/v1/jobs/{job_id}/ack", json={"token": leased["token"]})
    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json()["code"] == "lease_lost"
    assert (await client.get(job_id)).status is JobStatus.SUCCEEDED


async def test_fail_with_retry_in_requeues_while_attempts_remain(settings: Settings, client: Client) -> None:
    job_id = await client.enqueue("t", max_attempts=3)
    async with api_client(settings) as http:
        leased = await lease_one(http)
        body = {"token": leased["token"], "reason": "timeout upstream", "retry_in": 60}
        assert (await http.post(f"/v1/jobs/{job_id}/fail", json=body)).status_code == 200
    job = await client.get(job_id)
    assert job.status is JobStatus.QUEUED
    assert job.last_error == "timeout upstream"


async def test_heartbeat_extends_the_lease_and_reports_a_cancel_request(
    settings: Settings, client: Client
) -> None:
    job_id = await client.enqueue("t")
    async with api_client(settings) as http:
        leased = await lease_one(http, lease_seconds=5)
        await client.cancel(job_id)
        response = await http.post(
            f"/v1/jobs/{job_id}/heartbeat", json={"token": leased["token"], "lease_seconds": 600}
        )
    assert response.status_code == 200
    assert response.json()["cancel_requested"] is True
    job = await client.get(job_id)
    assert job.lease_expires_at is not None
    assert job.started_at is not None
    assert (job.lease_expires_at - job.started_at).total_seconds() > 60


async def test_a_wrong_or_malformed_token_changes_nothing(settings: Settings, client: Client) -> None:
    job_id = await client.enqueue("t")
    other = await client.enqueue("t")
    async with api_client(settings) as http:
        leased = await lease_one(http)
        token = leased["token"]
        assert leased["id"] == job_id
        malformed = await http.post(f"/v1/jobs/{job_id}/ack", json={"token": "not-a-token"})
        wrong_job = await http.post(f"/v1/jobs/{other}/ack", json={"token": token})
        unknown = await http.post("/v1/jobs/999999/ack", json={"token": token})
        beat_unknown = await http.post("/v1/jobs/999999/heartbeat", json={"token": token})
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "bad_token"
    assert wrong_job.status_code == 409
    assert unknown.status_code == 404
    assert beat_unknown.status_code == 404
    assert (await client.get(job_id)).status is JobStatus.RUNNING
    assert (await client.get(other)).status is JobStatus.QUEUED
