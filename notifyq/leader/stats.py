"""The notification-queue guard: a listener that stops reading fills Postgres's notification queue
(8 GB by default), after which every notifying commit fails. Watch it and say so early; past the
threshold, end notifyq's own listeners that are stuck (frozen workers) and name any other suspects."""

from __future__ import annotations

import logging

from psycopg_pool import AsyncConnectionPool

from notifyq import queries

log = logging.getLogger("notifyq.leader.stats")


class NotifyQueueGuard:
    def __init__(self, *, pool: AsyncConnectionPool, statements: queries.Statements, warn_at: float) -> None:
        self.pool = pool
        self.statements = statements
        self.warn_at = warn_at
        self.usage = 0.0
        self.terminated = 0  # stuck notifyq listeners ended so far
        self._suspects: set[int] = set()  # stuck at the last check

    async def run_once(self) -> float:
        """Returns pg_notification_queue_usage() (0..1); past the threshold, warns and unblocks."""
        async with self.pool.connection() as conn:
            usage = await queries.fetch_one(conn, queries.notification_queue_usage(self.statements))
        self.usage = float(usage or 0.0)
        if self.usage < self.warn_at:
            self._suspects = set()
            return self.usage
        log.warning(
            "notification queue %.1f%% full: a session LISTENs without reading; enqueues fail once it"
            " is full (it reads 0 again when the session reads or ends)",
            self.usage * 100,
        )
        await self._unblock()
        return self.usage

    async def _unblock(self) -> None:
        """End notifyq listeners seen stuck on two checks in a row (a healthy one only blips); name
        the other stuck sessions."""
        async with self.pool.connection() as conn:
            stuck = await queries.fetch_all(conn, queries.notification_queue_blockers(self.statements))
            ours = {pid for pid, _, mine in stuck if mine}
            ending = sorted(ours & self._suspects)
            if ending:
                await queries.fetch_all(conn, queries.backends_terminate(self.statements, pids=ending))
        self._suspects = ours - set(ending)
        self.terminated += len(ending)
        if ending:
            log.warning("terminated notifyq listeners stuck sending to frozen workers: %s", ending)
        others = [f"{pid} ({name or '?'})" for pid, name, mine in stuck if not mine]
        if others:
            log.warning("other sessions blocked sending to their client: %s", ", ".join(others))
