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

    async def run_once(self) -> float:
        """Returns pg_notification_queue_usage() (0..1), warning when it passes the threshold."""
        async with self.pool.connection() as conn:
            usage = await queries.fetch_one(conn, queries.notification_queue_usage(self.statements))
        self.usage = float(usage or 0.0)
        if self.usage >= self.warn_at:
            await self._unblock()
        return self.usage

    async def _unblock(self) -> None:
        async with self.pool.connection() as conn:
            stuck = await queries.fetch_all(conn, queries.notification_queue_blockers(self.statements))
        ended = [pid for pid, _, terminated in stuck if terminated]
        others = [
            f"{pid} ({name or 'no application_name'})" for pid, name, terminated in stuck if not terminated
        ]
        self.terminated += len(ended)
        log.warning(
            "notification queue %.1f%% full: a session LISTENs without reading, and enqueues fail once it"
            " is full; terminated stuck notifyq listeners: %s; other sessions blocked sending to their"
            " client: %s",
            self.usage * 100,
            ", ".join(map(str, ended)) or "none",
            ", ".join(others) or "none",
        )
