"""notifyq: a PostgreSQL job queue whose workers are woken by LISTEN/NOTIFY instead of polling."""

from notifyq.backoff import RetryPolicy
from notifyq.client import Client, configure, enqueue, enqueue_many
from notifyq.errors import (
    Cancel,
    ConfigError,
    Fail,
    InvalidNameError,
    JobNotFoundError,
    MigrationError,
    NotifyqError,
    PayloadError,
    Retry,
    UnknownTaskError,
)
from notifyq.migrate import migrate, migrate_sync
from notifyq.models import CancelResult, Job, JobStatus, QueueStats, RetryResult
from notifyq.schedules import CatchUp, Schedule
from notifyq.settings import Settings, WorkerSettings
from notifyq.sync import SyncClient
from notifyq.tasks import JobContext, JobSpec, Registry, Task, periodic, registry, task
from notifyq.worker import Worker

__version__ = "0.1.0.dev0"

__all__ = [
    "Cancel",
    "CancelResult",
    "CatchUp",
    "Client",
    "ConfigError",
    "Fail",
    "InvalidNameError",
    "Job",
    "JobContext",
    "JobNotFoundError",
    "JobSpec",
    "JobStatus",
    "MigrationError",
    "NotifyqError",
    "PayloadError",
    "QueueStats",
    "Registry",
    "Retry",
    "RetryPolicy",
    "RetryResult",
    "Schedule",
    "Settings",
    "SyncClient",
    "Task",
    "UnknownTaskError",
    "Worker",
    "WorkerSettings",
    "__version__",
    "configure",
    "enqueue",
    "enqueue_many",
    "migrate",
    "migrate_sync",
    "periodic",
    "registry",
    "task",
]
