"""The notification-queue guard: a listener that stops reading fills Postgres's notification queue
(8 GB by default), after which every notifying commit fails. Watch it and say so early."""

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

    async def run_once(self) -> float:
        """Returns pg_notification_queue_usage() (0..1), warning when it passes the threshold."""
        async with self.pool.connection() as conn:
            usage = await queries.fetch_one(conn, queries.notification_queue_usage(self.statements))
        self.usage = float(usage or 0.0)
        if self.usage >= self.warn_at:
            log.warning(
                "notification queue %.0f%% full: a session is LISTENing without reading;"
                " enqueues fail when it is full (find it in pg_stat_activity)",
                self.usage * 100,
            )
        return self.usage
