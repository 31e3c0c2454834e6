"""The HTTP API's job endpoints: enqueue (idempotent), show, list with cursors, cancel and retry."""

from __future__ import annotations

import pytest

from notifyq import Client, JobStatus, Settings
from tests.integration.api_support import api_client, lease_one

pytestmark = pytest.mark.anyio


async def test_enqueue_then_show_returns_the_job(settings: Settings) -> None:
    async with api_client(settings) as http:
        response = await http.post(
            "/v1/jobs", json={"task": "mail.send", "payload": {"to": "a"}, "priority": 3}
        )
        assert response.status_code == 201
        job_id = response.json()["id"]
        job = (await http.get(f"/v1/jobs/{job_id}")).json()
    assert job["task"] == "mail.send"
    assert job["payload"] == {"to": "a"}
    assert job["status"] == "queued"
    assert job["priority"] == 3


async def test_idempotency_key_header_returns_the_first_job(settings: Settings, client: Client) -> None:
    async with api_client(settings) as http:
        headers = {"Idempotency-Key": "order-42"}
        first = await http.post("/v1/jobs", json={"task": "t"}, headers=headers)
        second = await http.post("/v1/jobs", json={"task": "t", "payload": 2}, headers=headers)
    assert first.json()["id"] == second.json()["id"]
    assert len(await client.list_jobs()) == 1


async def test_list_filters_and_pages_with_an_opaque_cursor(settings: Settings) -> None:
    async with api_client(settings) as http:
        for i in range(5):
            await http.post("/v1/jobs", json={"task": "a" if i % 2 else "b", "queue": "q1"})
        await http.post("/v1/jobs", json={"task": "a", "queue": "q2"})
        page = (await http.get("/v1/jobs", params={"queue": "q1", "limit": 2})).json()
        seen = [j["id"] for j in page["jobs"]]
        while page["next_cursor"]:
            page = (
                await http.get("/v1/jobs", params={"queue": "q1", "limit": 2, "cursor": page["next_cursor"]})
            ).json()
            seen += [j["id"] for j in page["jobs"]]
        only_a = (await http.get("/v1/jobs", params={"task": "a", "status": "queued"})).json()["jobs"]
    assert len(seen) == 5
    assert seen == sorted(seen, reverse=True)
    assert {j["task"] for j in only_a} == {"a"}
    assert len(only_a) == 3


async def test_cancel_answers_200_queued_202_running_409_finished_404_unknown(settings: Settings) -> None:
    async with api_client(settings) as http:
        queued = (await http.post("/v1/jobs", json={"task": "t"})).json()["id"]
        assert (await http.post(f"/v1/jobs/{queued}/cancel")).status_code == 200
        conflict = await http.post(f"/v1/jobs/{queued}/cancel")
        assert conflict.status_code == 409
        assert conflict.json()["code"] == "already_finished"
        assert conflict.headers["content-type"].startswith("application/problem+json")
        running = (await http.post("/v1/jobs", json={"task": "t"})).json()["id"]
        await lease_one(http)
        response = await http.post(f"/v1/jobs/{running}/cancel")
        assert response.status_code == 202
        assert response.json()["requested"] is True
        missing = await http.post("/v1/jobs/999999/cancel")
        assert missing.status_code == 404
        assert missing.json()["code"] == "job_not_found"


async def test_retry_puts_a_failed_job_back_and_refuses_a_queued_one(
    settings: Settings, client: Client
) -> None:
    async with api_client(settings) as http:
        job_id = (await http.post("/v1/jobs", json={"task": "t", "max_attempts": 1})).json()["id"]
        assert (await http.post(f"/v1/jobs/{job_id}/retry")).status_code == 409
        leased = await lease_one(http)
        failed = await http.post(f"/v1/jobs/{job_id}/fail", json={"token": leased["token"], "reason": "boom"})
        assert failed.status_code == 200
        assert (await client.get(job_id)).status is JobStatus.FAILED
        response = await http.post(f"/v1/jobs/{job_id}/retry")
        assert response.status_code == 200
        assert (await http.post("/v1/jobs/999999/retry")).status_code == 404
    assert (await client.get(job_id)).status is JobStatus.QUEUED
