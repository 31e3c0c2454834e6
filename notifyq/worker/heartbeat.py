"""The heartbeat: one statement extends the lease of every job this worker runs, every lease/3,
and within a second of a job handed over (`kick`: its lease ran from the producer's insert).

Its answer also says which jobs were lost (rescued elsewhere: their handlers are stopped and their
outcomes dropped) and which have a cancel request (the backstop when a cancel notification was
missed during a listener reconnect).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import anyio
import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from notifyq import db, queries

log = logging.getLogger("notifyq.worker.heartbeat")

# the shortest time between two beats when kicked (hand-overs): one beat a second at most
KICK_GAP = 1.0


class Beat(msgspec.Struct, frozen=True, kw_only=True):
    extended: int
    # (job id, attempt) whose lease this worker no longer holds: rescued, or finished meanwhile
    lost: list[tuple[int, int]]
    cancel_requested: list[int]


class Heartbeat:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        statements: queries.Statements,
        worker_id: uuid.UUID,
        lease: float,
        held: Callable[[], list[tuple[int, int]]],
        db_timeout: float = 10.0,
    ) -> None:
        self.pool = pool
        self.statements = statements
        self.worker_id = worker_id
        self.lease = lease
        self.held = held
        self.db_timeout = db_timeout
        self._kicked = anyio.Event()

    async def run_once(self) -> Beat:
        held = self.held()
        if not held:
            return Beat(extended=0, lost=[], cancel_requested=[])
        query = queries.lease_extend_many(self.statements, worker=self.worker_id, held=held, lease=self.lease)
        states = await db.fetch_all_within(self.pool, query, self.db_timeout, shield=True)
        alive = {s.job_id for s in states}
        return Beat(
            extended=len(states),
            lost=[(job_id, attempt) for job_id, attempt in held if job_id not in alive],
            cancel_requested=[s.job_id for s in states if s.cancel_requested],
        )

    def kick(self) -> None:
        """Beat soon (a job came with a lease that ran from someone else's clock), but at most
        once every KICK_GAP: a stream of hand-overs costs a beat a second, not one a job."""
        self._kicked.set()

    async def run(self, on_beat: Callable[[Beat], None]) -> None:
        while True:
            await anyio.sleep(min(KICK_GAP, self.lease / 3))
            with anyio.move_on_after(self.lease / 3 - KICK_GAP):
                await self._kicked.wait()
            self._kicked = anyio.Event()
            try:
                on_beat(await self.run_once())
            except psycopg.Error as exc:
                log.warning("heartbeat failed (%s); leases expire in under %.0fs", exc, self.lease)
