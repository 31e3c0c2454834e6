"""Errors notifyq raises, and the outcomes a handler may raise to steer its job.

Every error derives from `NotifyqError`. A subclass exists only where a caller acts differently on it.
"""

from __future__ import annotations


class NotifyqError(Exception):
    """The root of every error notifyq raises."""


class ConfigError(NotifyqError):
    """A setting is invalid; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidNameError(NotifyqError, ValueError):
    """A queue, task or schema name that cannot be used (characters, length)."""

    def __init__(self, kind: str, name: object, rule: str) -> None:
        super().__init__(f"invalid {kind} name {name!r}: {rule}")
        self.kind = kind
        self.name = name


class PayloadError(NotifyqError, ValueError):
    """A payload that cannot be encoded as JSON, or does not match its task's payload type."""

    def __init__(self, task: str, message: str) -> None:
        super().__init__(f"payload for task {task!r}: {message}")
        self.task = task


class UnknownTaskError(NotifyqError, LookupError):
    """A task name that is not registered in this process."""

    def __init__(self, task: str) -> None:
        super().__init__(f"task {task!r} is not registered")
        self.task = task


class JobNotFoundError(NotifyqError, LookupError):
    """No job has this id (it never existed, or retention deleted it)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class MigrationError(NotifyqError):
    """The migrations on disk and the ones recorded in the database disagree."""


# -- outcomes a handler raises ---------------------------------------------------------------------


class Retry(NotifyqError):  # noqa: N818 - an instruction to the worker, not a failure
    """Raised by a handler: run the job again after `after` seconds (counts an attempt)."""

    def __init__(self, after: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.after = after
        self.reason = reason


class Cancel(NotifyqError):  # noqa: N818 - an instruction to the worker, not a failure
    """Raised by a handler: finish the job as cancelled, with no further attempts."""

    def __init__(self, reason: str = "cancelled by handler") -> None:
        super().__init__(reason)
        self.reason = reason


class Fail(NotifyqError):  # noqa: N818 - an instruction to the worker, not a failure
    """Raised by a handler: finish the job as failed now, whatever attempts remain."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
