"""Prometheus metrics of the API process, on a registry of its own (one per app, so tests can build many).

Counters and histograms are fed by the routes; queue depth, oldest age and notification-queue usage
are read from the database when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from notifyq.models import ClaimedJob, QueueStats

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.enqueued = Counter(
            "notifyq_jobs_enqueued", "Jobs enqueued through the API", ["queue"], registry=r
        )
        self.started = Counter("notifyq_jobs_started", "Jobs leased to HTTP workers", ["queue"], registry=r)
        self.finished = Counter(
            "notifyq_jobs_finished", "Jobs finished by HTTP workers", ["outcome"], registry=r
        )
        self.start_latency = Histogram(
            "notifyq_enqueue_to_start_seconds",
            "From due to leased (database clock)",
            ["queue"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.claim_batch = Histogram(
            "notifyq_claim_batch_size", "Jobs per non-empty lease", buckets=BATCH_BUCKETS, registry=r
        )
        self.depth = Gauge("notifyq_queue_depth", "Jobs by queue and status", ["queue", "status"], registry=r)
        self.oldest = Gauge(
            "notifyq_queue_oldest_due_age_seconds", "Age of the oldest due job", ["queue"], registry=r
        )
        self.notifications = Gauge(
            "notifyq_notifications_received", "Notifications the API listener received", registry=r
        )
        self.notify_usage = Gauge(
            "notifyq_notification_queue_usage", "pg_notification_queue_usage()", registry=r
        )

    def leased(self, jobs: Sequence[ClaimedJob], lease_seconds: float) -> None:
        if jobs:
            self.claim_batch.observe(len(jobs))
        for job in jobs:
            self.started.labels(job.queue).inc()
            self.start_latency.labels(job.queue).observe(job.waited(lease_seconds))

    def render(self, stats: Sequence[QueueStats], usage: float, notifications: int) -> bytes:
        for s in stats:
            for status in ("queued", "running", "succeeded", "failed", "cancelled"):
                self.depth.labels(s.queue, status).set(getattr(s, status))
            self.oldest.labels(s.queue).set(s.oldest_due_age or 0.0)
        self.notify_usage.set(usage)
        self.notifications.set(notifications)
        return generate_latest(self.registry)
