"""Retention: delete finished jobs older than their retention, in small batches without long locks."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from notifyq import queries

PRUNE_BATCH = 1000
# bounds one run's work; the rest waits for the next interval
MAX_BATCHES_PER_RUN = 50


class Pruner:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        statements: queries.Statements,
        keep_done: float,
        keep_failed: float,
    ) -> None:
        self.pool = pool
        self.statements = statements
        self.keep_done = keep_done
        self.keep_failed = keep_failed

    async def run_once(self) -> int:
        """Returns how many jobs were deleted."""
        query = queries.job_prune_batch(
            self.statements, keep_done=self.keep_done, keep_failed=self.keep_failed, limit=PRUNE_BATCH
        )
        deleted = 0
        for _ in range(MAX_BATCHES_PER_RUN):
            # each batch its own transaction (autocommit), so no lock is held across batches
            async with self.pool.connection() as conn:
                batch = len(await queries.fetch_all(conn, query))
            deleted += batch
            if batch < PRUNE_BATCH:
                break
        return deleted
