"""Prometheus metrics of one worker process: `notifyq-worker … --metrics-bind 127.0.0.1:9100`.

Optional (the `metrics` extra installs prometheus-client). When on, the hot path pays one histogram
observation per claim and two per job; what the worker counts anyway (notifications received, jobs
running, leadership, the leader's notification-queue reading) is read when /metrics is scraped.
Metric names start with `notifyq_worker_`, so they never clash with the API's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from notifyq.models import ClaimedJob, JobResult

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from notifyq.worker.worker import Worker

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RUN_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


class WorkerMetrics:
    """The worker's instruments, on a registry of its own (tests can build many)."""

    def __init__(self, *, lease: float) -> None:
        self.lease = lease
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.started = Counter(
            "notifyq_worker_jobs_started", "Jobs claimed and started", ["queue", "task"], registry=r
        )
        self.finished = Counter(
            "notifyq_worker_jobs_finished",
            "Jobs this worker ran, by outcome (succeeded, failed, retry, cancelled, release)",
            ["queue", "task", "outcome"],
            registry=r,
        )
        self.start_latency = Histogram(
            "notifyq_worker_enqueue_to_start_seconds",
            "From due (run_at) to claimed, on the database clock",
            ["queue"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.run_time = Histogram(
            "notifyq_worker_run_seconds", "Handler run time", ["task"], buckets=RUN_BUCKETS, registry=r
        )
        self.claim_batch = Histogram(
            "notifyq_worker_claim_batch_size", "Jobs per non-empty claim", buckets=BATCH_BUCKETS, registry=r
        )

    def claimed(self, jobs: Sequence[ClaimedJob]) -> None:
        if not jobs:
            return
        self.claim_batch.observe(len(jobs))
        for job in jobs:
            self.started.labels(job.queue, job.task).inc()
            self.start_latency.labels(job.queue).observe(job.waited(self.lease))

    def finished_job(self, job: ClaimedJob, result: JobResult, seconds: float) -> None:
        self.finished.labels(job.queue, job.task, result.outcome.value).inc()
        self.run_time.labels(job.task).observe(seconds)

    def attach(self, worker: Worker) -> None:
        """Read the worker's own counts at scrape time."""
        self.registry.register(_LiveCollector(worker))

    def serve(self, host: str, port: int) -> WSGIServer:
        """Serve /metrics from a daemon thread; `shutdown()` the returned server to stop it."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server


class _LiveCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        w = self.worker
        yield CounterMetricFamily(
            "notifyq_worker_notifications_received",
            "Notifications the listener received",
            value=w.listener.notifications,
        )
        yield CounterMetricFamily(
            "notifyq_worker_jobs_handed_over",
            "Jobs producers handed this worker (claimed for it by the insert trigger)",
            value=w.claimer.handed,
        )
        running = len(w.executor.running)
        yield GaugeMetricFamily("notifyq_worker_jobs_running", "Jobs running now", value=running)
        yield GaugeMetricFamily(
            "notifyq_worker_concurrency", "Jobs this worker runs at once", value=w.config.concurrency
        )
        leading = w.elector.is_leader
        yield GaugeMetricFamily("notifyq_worker_is_leader", "1 while this worker leads", value=int(leading))
        if leading:
            yield GaugeMetricFamily(
                "notifyq_worker_notification_queue_usage",
                "pg_notification_queue_usage() at the leader's last check",
                value=w.maintenance.guard.usage,
            )

    def describe(self) -> Iterator[Metric]:
        return iter(())
