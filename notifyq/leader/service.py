"""The maintenance services a leader runs, each on its own interval, from one timing loop."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from notifyq import db, queries, tasks
from notifyq.leader.cron import Cron
from notifyq.leader.prune import Pruner
from notifyq.leader.rescue import Rescuer
from notifyq.leader.stats import NotifyQueueGuard
from notifyq.settings import WorkerSettings

log = logging.getLogger("notifyq.leader")

GUARD_INTERVAL = 10.0


class Maintenance:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        statements: queries.Statements,
        registry: tasks.Registry,
        config: WorkerSettings,
    ) -> None:
        self.rescuer = Rescuer(
            pool=pool, statements=statements, grace=config.rescue_grace, confirm=config.dead_confirm
        )
        self.cron = Cron(pool=pool, statements=statements, registry=registry)
        self.pruner = Pruner(
            pool=pool,
            statements=statements,
            keep_done=config.retention_succeeded,
            keep_failed=config.retention_failed,
        )
        self.guard = NotifyQueueGuard(pool=pool, statements=statements, warn_at=config.notify_queue_warn)
        self._intervals = {
            "rescue": config.leader_tick,
            "cron": config.leader_tick,
            "prune": config.prune_interval,
            "guard": GUARD_INTERVAL,
        }
        self._next_run: dict[str, float] = {}
        # one service's statements may take this long; the leader session, idle meanwhile, is closed
        # by the server after leader_idle_timeout, so each service starts with a round trip on it
        self.deadline = config.leader_idle_timeout

    def start_leading(self, *, after_connection_loss: bool) -> None:
        self.rescuer.start_leading(after_connection_loss=after_connection_loss)
        self._next_run.clear()

    async def run_due(self, session: AsyncConnection[Any]) -> None:
        """Run every service whose interval has passed; a failing one is logged and retried later."""
        for name, interval in self._intervals.items():
            # a stop that came during the shielded service before takes effect here, not after
            # every service due
            await anyio.lowlevel.checkpoint_if_cancelled()
            now = anyio.current_time()
            if now < self._next_run.get(name, 0.0):
                continue
            self._next_run[name] = now + interval
            # shielded: a stopping worker lets the service end (within the deadline) rather than
            # interrupt a statement, which costs psycopg the connection; but not the prune, whose
            # batches (each its own transaction) may run for seconds: a stop interrupts those
            shield = name != "prune"
            try:
                with db.answer_within(self.deadline, shield=shield):
                    await queries.fetch_all(session, queries.session_check())
                    await self._service(name, session)()
            except psycopg.Error as exc:
                if session.broken or session.closed:
                    raise
                log.warning("maintenance %s failed (%s); retrying in %.1fs", name, exc, interval)

    def _service(self, name: str, session: AsyncConnection[Any]) -> Callable[[], Awaitable[Any]]:
        services: dict[str, Callable[[], Awaitable[Any]]] = {
            "rescue": lambda: self.rescuer.run_once(session),
            "cron": self.cron.run_once,
            "prune": self.pruner.run_once,
            "guard": self.guard.run_once,
        }
        return services[name]
