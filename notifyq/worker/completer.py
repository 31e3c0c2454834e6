"""The completer: buffers job outcomes and writes them in one statement per flush.

A flush happens `flush_interval` after the first buffered outcome, or at once when `flush_batch`
outcomes wait, or at once when the worker is idle as an outcome comes (`idle()`: the claimer
asleep, no job running; the executor reports an outcome once it no longer counts the job): then no
outcome would join the batch, so waiting would only delay the job's end for whoever watches it,
and on a lightly loaded worker the delayed write landed on the next job's arrival (at 200 jobs/s,
the after-call p99 of bench/latency.py halved once outcomes stopped waiting there).

On a database error the outcomes stay buffered and the flush is retried with backoff; an outcome
whose claim token no longer matches (the job was rescued) is dropped and counted in `lost`,
because the job belongs to another run now.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool

from notifyq import db, queries
from notifyq.models import JobResult, Outcome

log = logging.getLogger("notifyq.worker.completer")

MAX_RETRY_DELAY = 2.0


class Completer:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        statements: queries.Statements,
        worker_id: uuid.UUID,
        flush_interval: float,
        flush_batch: int,
        on_written: Callable[[JobResult], None] | None = None,
        db_timeout: float = 10.0,
        idle: Callable[[], bool] = lambda: False,
    ) -> None:
        self.pool = pool
        self.statements = statements
        self.worker_id = worker_id
        self.flush_interval = flush_interval
        self.flush_batch = flush_batch
        self.on_written = on_written
        self.db_timeout = db_timeout
        self.idle = idle
        self.buffer: list[JobResult] = []
        self.written = 0
        self.lost = 0
        self._pending = anyio.Event()
        self._full = anyio.Event()
        # one write at a time: the final flush must wait for a write in flight, or the outcomes it
        # carries would be restored to the buffer after the flush found it empty
        self._writing = anyio.Lock()

    def add(self, result: JobResult) -> None:
        self.buffer.append(result)
        self._pending.set()
        if len(self.buffer) >= self.flush_batch or self.idle():
            self._full.set()  # write now

    def paused(self) -> anyio.Lock:
        """Hold it (`async with`) and no outcome is written meanwhile: they stay in `buffer`."""
        return self._writing

    async def run_once(self) -> int:
        """Write everything buffered; returns how many outcomes were written."""
        async with self._writing:
            return await self._write()

    async def _write(self) -> int:
        batch, self.buffer = self.buffer, []
        self._pending, self._full = anyio.Event(), anyio.Event()
        if not batch:
            return 0
        try:
            query = queries.job_finish_many(self.statements, worker=self.worker_id, results=batch)
            done = set(await db.fetch_all_within(self.pool, query, self.db_timeout, shield=True))
        except BaseException:
            self.buffer[:0] = batch
            self._pending.set()
            raise
        self._account(batch, done)
        return len(done)

    def _account(self, batch: list[JobResult], done: set[int]) -> None:
        for result in batch:
            if result.job_id in done:
                self.written += 1
                if self.on_written is not None:
                    self.on_written(result)
            else:
                self.lost += 1
                log.warning(
                    "job %s attempt %s: outcome %s not written, this worker no longer holds it",
                    result.job_id, result.attempt, result.outcome.value,
                )  # fmt: skip

    async def run(self) -> None:
        delay = self.flush_interval
        while True:
            await self._pending.wait()
            with anyio.move_on_after(self.flush_interval):
                await self._full.wait()
            try:
                await self.run_once()
                delay = self.flush_interval
            except psycopg.Error as exc:
                delay = min(max(delay * 2, 0.05), MAX_RETRY_DELAY)
                log.warning(
                    "writing %d outcomes failed (%s); retrying in %.2fs",
                    len(self.buffer),
                    exc,
                    delay,
                )
                await anyio.sleep(delay)

    async def flush(self, *, attempts: int = 5) -> None:
        """Write what is left (shutdown); gives up after `attempts` failures, leaving leases to expire."""
        for attempt in range(attempts):
            try:
                await self.run_once()
            except psycopg.Error as exc:
                log.warning("final flush failed (%s)", exc)
                await anyio.sleep(min(0.1 * 2**attempt, MAX_RETRY_DELAY))
            if not self.buffer:
                return


def is_release(result: JobResult) -> bool:
    return result.outcome is Outcome.RELEASE
