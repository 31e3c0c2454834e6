"""Rescue: give the running jobs of dead or silent workers back to the queue."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import anyio
import msgspec
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from notifyq import queries
from notifyq.models import Rescued

log = logging.getLogger("notifyq.leader.rescue")

RESCUE_BATCH = 1000


class RescueResult(msgspec.Struct, frozen=True, kw_only=True):
    dead_workers: list[uuid.UUID]
    rescued: list[Rescued]


class Rescuer:
    def __init__(
        self, *, pool: AsyncConnectionPool, statements: queries.Statements, grace: float, confirm: float
    ) -> None:
        self.pool = pool
        self.statements = statements
        self.grace = grace
        self.confirm = confirm
        # no lock-based rescue before this (anyio clock); None: not leading
        self.probe_after: float | None = None
        # worker id -> when its lock was first seen free (it is dead once seen free again `confirm` later)
        self._suspects: dict[uuid.UUID, float] = {}

    def start_leading(self, *, after_connection_loss: bool = False) -> None:
        """A new term. After this leader lost its own connection (a restart or failover may have
        dropped every worker's lock too) lock-based rescue waits `grace`; after taking over from a
        dead leader, or at first start, it starts at once (the server's start time covers restarts)."""
        now = anyio.current_time()
        self.probe_after = now + self.grace if after_connection_loss else now
        self._suspects.clear()

    async def run_once(self, session: AsyncConnection[Any]) -> RescueResult:
        dead = await self._dead_workers(session)
        # one transaction, the delete first: with their queue_waiters rows gone (the delete waits
        # for a producer holding one), producers can hand the dead nothing the rescue would miss
        async with self.pool.connection() as conn, conn.transaction():
            if dead:
                await queries.fetch_all(conn, queries.worker_delete_many(self.statements, worker_ids=dead))
            rescued = await queries.fetch_all(
                conn, queries.job_rescue_many(self.statements, dead=dead, limit=RESCUE_BATCH)
            )
        for worker_id in dead:
            self._suspects.pop(worker_id, None)
        if dead or rescued:
            log.warning("dead workers %s; rescued %d jobs", [str(d) for d in dead], len(rescued))
        return RescueResult(dead_workers=dead, rescued=rescued)

    async def _dead_workers(self, session: AsyncConnection[Any]) -> list[uuid.UUID]:
        now = anyio.current_time()
        if self.probe_after is None or now < self.probe_after:
            return []
        probes = await queries.fetch_all(session, queries.worker_probe(self.statements, grace=self.grace))
        free = {p.id for p in probes if p.lock_free}
        self._suspects = {w: self._suspects.get(w, now) for w in free}
        return [w for w, since in self._suspects.items() if now - since >= self.confirm]
