"""Bad input answered with the right status and nothing changed; auth; queues, workers, health,
metrics, the OpenAPI document and the dashboard page."""

from __future__ import annotations

import pytest

from notifyq import Client, JobStatus, Settings
from notifyq.api.app import MAX_BODY
from tests.integration.api_support import api_client

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"task": 5}', 400),
        (b'{"task": "t", "priority": "high"}', 400),
        (b'{"task": "t", "unknown": 1}', 400),
        (b'{"task": "bad name!"}', 422),
        (b'{"task": "t", "queue": "' + b"q" * 199 + b'"}', 422),
        (b"[]", 400),
    ],
)
async def test_bad_enqueue_bodies_are_refused_and_insert_nothing(
    settings: Settings, client: Client, body: bytes, status: int
) -> None:
    async with api_client(settings) as http:
        response = await http.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"]
    assert await client.list_jobs() == []


async def test_an_oversized_body_is_refused_with_413(settings: Settings, client: Client) -> None:
    big = b'{"task": "t", "payload": "' + b"x" * MAX_BODY + b'"}'
    async with api_client(settings) as http:
        response = await http.post("/v1/jobs", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert await client.list_jobs() == []


async def test_unknown_ids_and_bad_queries_answer_404_and_400(settings: Settings, client: Client) -> None:
    job_id = await client.enqueue("t")
    async with api_client(settings) as http:
        assert (await http.get("/v1/jobs/999999")).json()["code"] == "job_not_found"
        assert (await http.get("/v1/jobs/abc")).status_code in (400, 404)
        assert (await http.get("/v1/jobs", params={"cursor": "!!"})).json()["code"] == "bad_cursor"
        assert (await http.get("/v1/jobs", params={"status": "nope"})).status_code == 400
        assert (await http.get("/v1/jobs", params={"limit": 0})).status_code == 400
        assert (await http.get("/v1/jobs", params={"queue": "bad name"})).status_code == 400
        bad_lease = await http.post("/v1/lease", json={"queues": [], "limit": 1})
        assert bad_lease.status_code == 400
        assert (await http.post("/v1/lease", json={"queues": ["default"], "wait": 999})).status_code == 400
    assert (await client.get(job_id)).status is JobStatus.QUEUED


async def test_bearer_token_is_required_when_configured(settings: Settings, client: Client) -> None:
    async with api_client(settings, token="s3cret") as http:
        missing = await http.post("/v1/jobs", json={"task": "t"})
        wrong = await http.get("/v1/queues", headers={"Authorization": "Bearer nope"})
        right = await http.get("/v1/queues", headers={"Authorization": "Bearer s3cret"})
        health = await http.get("/healthz")
    assert missing.status_code == 401
    assert missing.json()["code"] == "unauthorized"
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert health.status_code == 200
    assert await client.list_jobs() == []


async def test_queues_workers_and_health_report_the_database(settings: Settings, client: Client) -> None:
    await client.enqueue("t", queue="mail")
    async with api_client(settings, listen_queues=["mail"]) as http:
        queues = (await http.get("/v1/queues")).json()
        workers = (await http.get("/v1/workers")).json()["workers"]
        health = await http.get("/healthz")
    assert [q["queue"] for q in queues["queues"]] == ["mail"]
    assert queues["queues"][0]["queued"] == 1
    assert 0 <= queues["notification_queue_usage"] < 1
    # the API registers itself (its listener publishes demand like a worker)
    assert [w["queues"] for w in workers] == [["mail"]]
    assert health.json() == {"status": "ok"}


async def test_metrics_expose_counters_histograms_and_queue_gauges(settings: Settings) -> None:
    async with api_client(settings) as http:
        await http.post("/v1/jobs", json={"task": "t"})
        await http.post("/v1/lease", json={"queues": ["default"]})
        text = (await http.get("/metrics")).text
    for name in (
        'notifyq_jobs_enqueued_total{queue="default"} 1.0',
        'notifyq_jobs_started_total{queue="default"} 1.0',
        "notifyq_enqueue_to_start_seconds_bucket",
        "notifyq_claim_batch_size_count 1.0",
        'notifyq_queue_depth{queue="default",status="running"} 1.0',
        "notifyq_notification_queue_usage",
        "notifyq_notifications_received",
    ):
        assert name in text


async def test_openapi_document_and_docs_ui_and_dashboard_are_served(settings: Settings) -> None:
    async with api_client(settings) as http:
        schema = (await http.get("/schema/openapi.json")).json()
        docs = await http.get("/schema/swagger")
        page = await http.get("/dashboard")
    assert "/v1/lease" in schema["paths"]
    assert "/v1/jobs/{job_id}/ack" in schema["paths"]
    assert docs.status_code == 200
    assert "Failed jobs" in page.text
