"""The worker's Prometheus endpoint (`notifyq-worker --metrics-bind`): what it counts, scraped over HTTP."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from typing import Any

import anyio
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifyq import Client, Fail, Registry, Settings, Worker, WorkerSettings
from notifyq.worker.metrics import WorkerMetrics
from tests.helpers import wait_until

pytestmark = pytest.mark.anyio


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_a_worker_exports_its_jobs_outcomes_latency_and_notifications(
    settings: Settings, registry: Registry, client: Client, aconn: psycopg.AsyncConnection[Any]
) -> None:
    @registry.task(queue="m")
    async def ok() -> None:
        pass

    @registry.task(queue="m")
    async def refuse() -> None:
        raise Fail("no")

    metrics = WorkerMetrics(lease=30)
    server = metrics.serve("127.0.0.1", 0)
    port = server.server_address[1]
    config = WorkerSettings(queues=("m",), poll_interval=60)
    worker = Worker(settings, config, registry=registry, metrics=metrics)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(worker.run)

            async def waiting() -> bool:  # its demand is published: the next enqueue is handed over
                cur = await aconn.execute(
                    "SELECT 1 FROM notifyq.queue_waiters WHERE woken_at IS NULL AND slots > 0"
                )
                return await cur.fetchone() is not None

            await wait_until(waiting)
            ids = [await client.enqueue(ok) for _ in range(5)] + [await client.enqueue(refuse)]
            await wait_until(lambda: worker.counters.succeeded + worker.counters.failed == len(ids))
            samples = await anyio.to_thread.run_sync(_scrape, port)
            worker.stop()
    finally:
        server.shutdown()
        server.server_close()

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("notifyq_worker_jobs_started_total", queue="m", task=ok.name) == 5
    assert value("notifyq_worker_jobs_started_total", queue="m", task=refuse.name) == 1
    assert value("notifyq_worker_jobs_finished_total", queue="m", task=ok.name, outcome="succeeded") == 5
    assert value("notifyq_worker_jobs_finished_total", queue="m", task=refuse.name, outcome="failed") == 1
    assert value("notifyq_worker_enqueue_to_start_seconds_count", queue="m") == 6
    assert value("notifyq_worker_run_seconds_count", task=ok.name) == 5
    assert 1 <= value("notifyq_worker_claim_batch_size_count") <= 6
    assert value("notifyq_worker_claim_batch_size_sum") == 6
    # the first job was enqueued while the worker waited: it came handed over, in a notification
    assert value("notifyq_worker_notifications_received_total") >= 1
    assert value("notifyq_worker_jobs_handed_over_total") == worker.claimer.handed >= 1
    assert value("notifyq_worker_jobs_running") == 0
    assert value("notifyq_worker_concurrency") == WorkerSettings().concurrency


def test_a_bad_metrics_bind_is_refused_before_the_worker_starts(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "notifyq.cli.worker", "json", "--metrics-bind", "nowhere"],
        env={"DATABASE_URL": database_url, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "expected HOST:PORT, got 'nowhere'" in result.stderr
