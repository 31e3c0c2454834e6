"""The executor: runs claimed jobs in the worker's task group, at most `concurrency` at a time.

Async handlers run inline; sync handlers in worker threads. Each job runs in its own cancel scope,
so a cancel request, a lost lease or shutdown stops exactly that job. What a run produced becomes a
`JobResult` for the completer:
- return -> succeeded; `Retry(after)` -> retry; `Cancel` -> cancelled; `Fail` -> failed now;
- any other exception or the task's timeout -> retry with the task's backoff, failed when the
  attempts are used up (the error history stays on the row: the dead-letter set);
- a payload that does not decode into the task's type -> failed at once (retrying cannot help);
- a task this worker does not know -> retried with the default backoff, so a worker of another
  deploy (which has the task) can run it; after max_attempts it ends as failed, never lost.
A sync handler cannot be interrupted: on timeout or cancel its thread is abandoned and runs on.
"""

from __future__ import annotations

import enum
import logging
import random
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus

from notifyq.backoff import DEFAULT_POLICY
from notifyq.errors import Cancel, Fail, PayloadError, Retry
from notifyq.models import ClaimedJob, JobResult, Outcome
from notifyq.tasks import JobContext, Registry, Task

log = logging.getLogger("notifyq.worker.executor")

MAX_ERROR_LENGTH = 8000


class StopReason(enum.Enum):
    CANCEL_REQUESTED = "cancel requested"
    SHUTDOWN = "worker shutting down"
    LEASE_LOST = "lease lost"


@dataclass(eq=False, slots=True)
class Running:
    job: ClaimedJob
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stop_reason: StopReason | None = None

    def stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.scope.cancel()


class _RunQueue:
    """Started jobs waiting for a runner, and idle runners waiting for a job: a hand-off of one
    event per job. anyio's memory stream did the same with a checkpoint on every receive and a
    cancellation check on every send (20 us a job against 7.5 here, measured with 500 runners
    and batches of 100); the executor needs neither, its runners are only ever cancelled
    together, when the worker stops."""

    def __init__(self) -> None:
        self._jobs: deque[Running] = deque()
        self._idle: deque[tuple[anyio.Event, list[Running]]] = deque()

    def put(self, running: Running) -> None:
        if self._idle:
            woken, slot = self._idle.popleft()
            slot.append(running)
            woken.set()
        else:
            self._jobs.append(running)

    async def get(self) -> Running:
        if self._jobs:
            await anyio.lowlevel.checkpoint()  # a runner taking job after job lets others run too
            if self._jobs:
                return self._jobs.popleft()
        woken, slot = anyio.Event(), list[Running]()
        waiter = (woken, slot)
        self._idle.append(waiter)
        try:
            await woken.wait()
        except BaseException:  # cancelled (the worker stops): leave the job to another runner
            if slot:
                self._jobs.appendleft(slot[0])
            else:
                self._idle.remove(waiter)
            raise
        return slot[0]


class Executor:
    def __init__(
        self,
        *,
        concurrency: int,
        registry: Registry,
        report: Callable[[JobResult], None],
        draw: Callable[[], float] = random.random,
        observe: Callable[[ClaimedJob, JobResult, float], None] | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.registry = registry
        self.report = report
        # metrics, when on: (job, result, handler seconds) for every run that reports a result
        self.observe = observe
        self.draw = draw
        self.running: dict[int, Running] = {}
        self._threads = anyio.CapacityLimiter(concurrency)
        self._reserved = 0
        self._changed = anyio.Event()
        self._queue: _RunQueue | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host `concurrency` long-lived runners until cancelled; each takes one job at a time.

        Started jobs wait for a runner in a `_RunQueue`: cheaper than a task per job (anyio's
        task and cancel-scope creation dominated the worker's CPU profile).
        """
        queue = _RunQueue()
        try:
            async with anyio.create_task_group() as runners:
                for _ in range(self.concurrency):
                    runners.start_soon(self._runner, queue)
                self._queue = queue
                task_status.started()
        finally:
            self._queue = None  # a job started now would wait for runners that are gone

    async def _runner(self, queue: _RunQueue) -> None:
        while True:
            await self._run(await queue.get())

    @property
    def free(self) -> int:
        """Runners neither busy nor promised to a claim in flight (`reserve`)."""
        return self.concurrency - len(self.running) - self._reserved

    @contextmanager
    def reserve(self, count: int) -> Iterator[None]:
        """Hold `count` runners for a claim in flight: a job handed over meanwhile finds them taken."""
        self._reserved += count
        try:
            yield
        finally:
            self._reserved -= count

    def held(self) -> list[tuple[int, int]]:
        """(job id, attempt) of every job running here: the claim tokens the heartbeat extends."""
        return [(r.job.id, r.job.attempts) for r in self.running.values()]

    async def wait_for_capacity(self) -> int:
        while self.free <= 0:
            self._changed = anyio.Event()
            await self._changed.wait()
        return self.free

    async def wait_idle(self) -> None:
        while self.running:
            self._changed = anyio.Event()
            await self._changed.wait()

    def start(self, job: ClaimedJob) -> None:
        """Hand a claimed job to a runner (the callers start only as many as `free` allows)."""
        if self._queue is None:
            raise RuntimeError("Executor.start while Executor.run is not running")
        held = self.running.get(job.id)
        if held is not None and held.job.attempts == job.attempts:
            log.error("job %s attempt %s is running here already; not started twice", job.id, job.attempts)
            return
        running = Running(job)
        self.running[job.id] = running
        self._queue.put(running)

    def stop(self, job_id: int, reason: StopReason, *, attempt: int | None = None) -> bool:
        """Stop the job's handler (only if it runs `attempt`, when given); False if none was."""
        running = self.running.get(job_id)
        if running is None or (attempt is not None and running.job.attempts != attempt):
            return False
        running.stop(reason)
        return True

    def stop_all(self, reason: StopReason) -> None:
        for running in list(self.running.values()):
            running.stop(reason)

    async def _run(self, running: Running) -> None:
        job = running.job
        result: JobResult | None = None
        began = time.perf_counter()
        try:
            with running.scope:
                result = await self._execute(job)
            if running.scope.cancelled_caught:
                result = _stopped(job, running.stop_reason)
        finally:
            # a job rescued from us and claimed by us again has a new entry under the same id
            if self.running.get(job.id) is running:
                del self.running[job.id]
            self._changed.set()
        # reported once no longer running (the completer writes at once when nothing runs), in the
        # same step: nothing waiting for an idle executor runs before the outcome is buffered
        if result is not None:
            self.report(result)
            if self.observe is not None:
                self.observe(job, result, time.perf_counter() - began)

    async def _execute(self, job: ClaimedJob) -> JobResult:
        task = self.registry.get(job.task)
        if task is None:
            error = f"task {job.task!r} is not registered on this worker"
            return self._failure(job, None, error, None)
        try:
            payload = task.decode(job.payload)
        except PayloadError as exc:
            return JobResult(job_id=job.id, attempt=job.attempts, outcome=Outcome.FAILED, error=str(exc))
        return await self._call(job, task, payload)

    async def _call(self, job: ClaimedJob, task: Task, payload: Any) -> JobResult:
        kwargs = task.arguments(payload, partial(_context, job))
        try:
            with _timeout(task.timeout):
                if task.is_async:
                    await task.fn(**kwargs)
                else:
                    call = partial(task.fn, **kwargs)
                    await anyio.to_thread.run_sync(call, abandon_on_cancel=True, limiter=self._threads)
        except Retry as exc:
            return self._failure(job, task, f"Retry: {exc.reason}", exc.after)
        except Cancel as exc:
            return _final(job, Outcome.CANCELLED, f"Cancel: {exc.reason}")
        except Fail as exc:
            return _final(job, Outcome.FAILED, f"Fail: {exc.reason}")
        except TimeoutError as exc:
            return self._failure(job, task, _describe(exc, task.timeout), None)
        except Exception as exc:  # noqa: BLE001 - any handler error is an outcome, never a crash
            return self._failure(job, task, _describe(exc, None), None)
        return JobResult(job_id=job.id, attempt=job.attempts, outcome=Outcome.SUCCEEDED)

    def _failure(self, job: ClaimedJob, task: Task | None, error: str, after: float | None) -> JobResult:
        if job.attempts >= job.max_attempts:
            return _final(job, Outcome.FAILED, error)
        if after is None:
            draw = self.draw()
            after = task.retry_delay(job.attempts, draw) if task else DEFAULT_POLICY.delay(job.attempts, draw)
        return JobResult(
            job_id=job.id,
            attempt=job.attempts,
            outcome=Outcome.RETRY,
            error=error,
            retry_in=max(after, 0.0),
        )


def _final(job: ClaimedJob, outcome: Outcome, error: str) -> JobResult:
    return JobResult(job_id=job.id, attempt=job.attempts, outcome=outcome, error=error)


def _stopped(job: ClaimedJob, reason: StopReason | None) -> JobResult | None:
    if reason is StopReason.CANCEL_REQUESTED:
        return _final(job, Outcome.CANCELLED, "cancelled while running")
    if reason is StopReason.SHUTDOWN:
        return JobResult(job_id=job.id, attempt=job.attempts, outcome=Outcome.RELEASE)
    # lease lost: the job belongs to someone else now; nothing to write
    return None


def _context(job: ClaimedJob) -> JobContext:
    return JobContext(
        job_id=job.id,
        task=job.task,
        queue=job.queue,
        attempt=job.attempts,
        max_attempts=job.max_attempts,
        created_at=job.created_at,
    )


def _timeout(seconds: float | None) -> AbstractContextManager[Any]:
    return nullcontext() if seconds is None else anyio.fail_after(seconds)


def _describe(exc: BaseException, timeout: float | None) -> str:
    if timeout is not None:
        return f"TimeoutError: timed out after {timeout:g}s"
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= MAX_ERROR_LENGTH else "…" + text[-MAX_ERROR_LENGTH:]
