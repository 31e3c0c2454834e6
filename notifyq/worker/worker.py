"""The worker's lifecycle: start the parts in one task group, stop them in order.

Start: open the pool, LISTEN (via `tg.start`, so it is in place before the first claim), start the
completer and heartbeat, then claim. Stop (`stop()`, or SIGINT/SIGTERM in `notifyq-worker`): stop
claiming and withdraw the worker's demand (no more hand-overs; one arriving after that is handed
back), wait up to `shutdown_timeout` for running jobs, cancel the rest and hand their leases back,
write every outcome, release any hand-over whose notification never arrived, close.
`stop(now=True)` skips the wait.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import anyio
import psycopg
from anyio.abc import TaskStatus
from psycopg_pool import AsyncConnectionPool

from notifyq import db, names, queries, tasks
from notifyq.leader import Elector, Maintenance
from notifyq.models import ClaimedJob, JobResult, Outcome
from notifyq.settings import Settings, WorkerSettings
from notifyq.worker.claimer import Claimer
from notifyq.worker.completer import Completer
from notifyq.worker.executor import Executor, StopReason
from notifyq.worker.handover import HandOvers
from notifyq.worker.heartbeat import Beat, Heartbeat
from notifyq.worker.listener import Listener
from notifyq.worker.registration import Registration
from notifyq.worker.waker import Waker

if TYPE_CHECKING:
    from notifyq.worker.metrics import WorkerMetrics

log = logging.getLogger("notifyq.worker")


@dataclass(slots=True)
class WorkerCounters:
    """What this worker has done since it started (outcomes count once written)."""

    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    released: int = 0

    def count(self, result: JobResult) -> None:
        attr = _COUNTER_OF[result.outcome]
        setattr(self, attr, getattr(self, attr) + 1)


_COUNTER_OF = MappingProxyType(
    {
        Outcome.SUCCEEDED: "succeeded",
        Outcome.FAILED: "failed",
        Outcome.RETRY: "retried",
        Outcome.CANCELLED: "cancelled",
        Outcome.RELEASE: "released",
    }
)


class Worker:
    """One worker process's worth of parts. `await worker.run()` until `worker.stop()`.

    Build it inside async code (its anyio primitives belong to the running event loop).
    """

    def __init__(
        self,
        settings: Settings,
        config: WorkerSettings | None = None,
        *,
        registry: tasks.Registry = tasks.registry,
        pool: AsyncConnectionPool | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.config = config or WorkerSettings()
        self.metrics = metrics
        self.id = uuid.uuid4()
        self.counters = WorkerCounters()
        self.waker = Waker()
        self._own_pool = pool is None
        self.pool = pool or db.async_pool(
            settings,
            name=f"notifyq-worker-{self.id}",
            check=False,
            synchronous_commit=self.config.synchronous_commit,
        )
        self._claim_scope = anyio.CancelScope()
        self._hurry = anyio.Event()
        self._build_parts(registry, queries.statements(settings.schema))
        if metrics is not None:
            metrics.attach(self)

    def _build_parts(self, registry: tasks.Registry, st: queries.Statements) -> None:
        cfg = self.config
        hand_over = cfg.listen and cfg.hand_over_max_rate > 0
        hand_over_channel = names.hand_over_channel(self.settings.schema, self.id) if hand_over else None
        self.completer = Completer(
            pool=self.pool, statements=st, worker_id=self.id, flush_interval=cfg.flush_interval,
            flush_batch=cfg.flush_batch, on_written=self._on_written, db_timeout=cfg.db_timeout,
            idle=self._idle,
        )  # fmt: skip
        metrics = self.metrics
        self.executor = Executor(
            concurrency=cfg.concurrency, registry=registry, report=self.completer.add,
            observe=metrics.finished_job if metrics else None,
        )  # fmt: skip
        self.claimer = Claimer(
            pool=self.pool, statements=st, worker_id=self.id, queues=cfg.queues, lease=cfg.lease,
            poll_interval=cfg.poll_interval, linger=cfg.claim_linger, recheck_after=cfg.recheck_after,
            db_timeout=cfg.db_timeout, executor=self.executor, waker=self.waker,
            publish_demand=cfg.listen, hand_over_channel=hand_over_channel,
            hand_over_max_rate=cfg.hand_over_max_rate, observe=metrics.claimed if metrics else None,
        )  # fmt: skip
        self.heartbeat = Heartbeat(
            pool=self.pool,
            statements=st,
            worker_id=self.id,
            lease=cfg.lease,
            held=self.executor.held,
            db_timeout=cfg.db_timeout,
        )
        self.hand_overs = HandOvers(
            pool=self.pool, statements=st, worker_id=self.id, executor=self.executor,
            completer=self.completer, on_received=self.claimer.handed_over,
            on_started=self._on_handed_over, on_unreadable=self.claimer.request_recovery,
            db_timeout=cfg.db_timeout,
        )  # fmt: skip
        self.claimer.recover = self.hand_overs.adopt_lost
        self.registration = Registration(
            pool=self.pool, statements=st, worker_id=self.id, queues=cfg.queues,
            concurrency=cfg.concurrency, beat_interval=cfg.heartbeat_interval, db_timeout=cfg.db_timeout,
        )  # fmt: skip
        self.listener = Listener(
            self.settings,
            queue_channels=[names.queue_channel(self.settings.schema, q) for q in cfg.queues if cfg.listen],
            cancel_channel=names.cancel_channel(self.settings.schema),
            waker=self.waker,
            on_cancel=self._on_cancel,
            reconnect_max_delay=cfg.reconnect_max_delay,
            hand_over_channel=hand_over_channel,
            on_hand_over=self.hand_overs.receive,
            on_reconnect=self.claimer.request_recovery if hand_over else None,
            on_connect=self.registration.on_listener_connect,
            db_timeout=cfg.db_timeout,
        )
        self.maintenance = Maintenance(pool=self.pool, statements=st, registry=registry, config=cfg)
        self.elector = Elector(
            self.settings,
            pool=self.pool,
            worker_id=self.id,
            maintenance=self.maintenance,
            tick=cfg.leader_tick,
            idle_timeout=cfg.leader_idle_timeout,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until stopped; `task_status.started()` once LISTEN and its demand are in place."""
        if self._own_pool:
            await self.pool.open(wait=True)
        try:
            async with anyio.create_task_group() as services:
                # even a poll-only worker keeps the session: it holds the liveness lock and hears cancels
                await services.start(self.listener.run)
                # demand published before "started": any insert from then on notifies this worker,
                # and the first claim finds whatever was committed before (no hand-overs until the
                # executor runs: the claimer's first arm allows them)
                await self.claimer.arm(hand_over=False)
                services.start_soon(self.completer.run)
                services.start_soon(self.heartbeat.run, self._on_beat)
                services.start_soon(self.registration.run)
                if self.config.leader:
                    services.start_soon(self.elector.run)
                log.info("worker %s started on queues %s", self.id, ",".join(self.config.queues))
                task_status.started()
                await self._work()
                await self.completer.flush()
                with anyio.CancelScope(shield=True):
                    await self.hand_overs.release_held()
                await self.registration.unregister()
                services.cancel_scope.cancel()
        finally:
            if self._own_pool:
                await self.pool.close()
        c = self.claimer
        log.info(
            "worker %s stopped: %d jobs from %d claims, %d handed over; armed %d times, refilled %d,"
            " rechecked %d (%d found a job unannounced)",
            self.id, c.claimed, c.claims, c.handed, c.arms, c.refills, c.rechecks, c.found_waiting,
        )  # fmt: skip

    async def _work(self) -> None:
        async with anyio.create_task_group() as jobs:
            await jobs.start(self.executor.run)
            with self._claim_scope:
                await self.claimer.run()
            await self._withdraw()
            await self._drain()
            jobs.cancel_scope.cancel()

    async def _drain(self) -> None:
        running = len(self.executor.running)
        if running:
            log.info("waiting up to %gs for %d running jobs", self.config.shutdown_timeout, running)
        with anyio.move_on_after(self.config.shutdown_timeout):
            await _first_of(self.executor.wait_idle(), self._hurry.wait())
        self.executor.stop_all(StopReason.SHUTDOWN)
        # the stopped jobs report their release as their scopes unwind
        await self.executor.wait_idle()

    async def _withdraw(self) -> None:
        self.hand_overs.stopping = True  # from here on a hand-over is handed back, not run
        with anyio.CancelScope(shield=True):
            try:
                await self.claimer.disarm()
            except psycopg.Error as exc:  # still armed: hand-overs keep coming and go back
                log.warning("could not withdraw worker %s's demand (%s)", self.id, exc)

    def stop(self, *, now: bool = False) -> None:
        """Stop claiming and shut down; `now` cancels running jobs at once (their leases go back)."""
        self._claim_scope.cancel()
        if now:
            self._hurry.set()

    def _idle(self) -> bool:
        """Nothing to batch an outcome with: the claimer waits for work and no job runs."""
        return self.claimer.sleeping and not self.executor.running

    def _on_written(self, result: JobResult) -> None:
        self.counters.count(result)
        if result.outcome is Outcome.RETRY:
            # the row's run_at is now() + retry_in as of this write: set the timer from here
            self.waker.schedule(result.retry_in)

    def _on_handed_over(self, jobs: Sequence[ClaimedJob]) -> None:
        # the lease ran from the producer's insert: renew it soon, not a whole beat interval later
        self.heartbeat.kick()
        if self.metrics is not None:
            self.metrics.claimed(jobs)

    def _on_cancel(self, job_id: int) -> None:
        self.executor.stop(job_id, StopReason.CANCEL_REQUESTED)

    def _on_beat(self, beat: Beat) -> None:
        for job_id, attempt in beat.lost:
            # only that attempt, if it still runs: its outcome may have been written during the
            # beat (the job finished, not lost), and a retry may already run here as the next one
            if self.executor.stop(job_id, StopReason.LEASE_LOST, attempt=attempt):
                log.warning("job %s: lease lost (rescued elsewhere); stopping its handler", job_id)
        for job_id in beat.cancel_requested:
            self.executor.stop(job_id, StopReason.CANCEL_REQUESTED)


async def _first_of(*waits: object) -> None:
    """Return when the first of the awaitables completes (the others are cancelled)."""
    async with anyio.create_task_group() as tg:

        async def run(awaitable: object) -> None:
            await awaitable  # type: ignore[misc] # coroutines passed by the caller
            tg.cancel_scope.cancel()

        for awaitable in waits:
            tg.start_soon(run, awaitable)
