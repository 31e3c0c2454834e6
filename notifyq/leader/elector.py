"""Leader election: a session advisory lock on a connection of the elector's own."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import anyio
import anyio.lowlevel
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from notifyq import db, names, queries
from notifyq.leader.service import Maintenance
from notifyq.settings import Settings

log = logging.getLogger("notifyq.leader")


class Elector:
    def __init__(
        self,
        settings: Settings,
        *,
        pool: AsyncConnectionPool,
        worker_id: uuid.UUID,
        maintenance: Maintenance,
        tick: float,
        idle_timeout: float,
    ) -> None:
        self.settings = settings
        self.statements = queries.statements(settings.schema)
        self.pool = pool
        self.worker_id = worker_id
        self.maintenance = maintenance
        self.tick = tick
        # the session runs a statement every tick; one silent for idle_timeout belongs to a frozen
        # process (SIGSTOP, a blocked event loop): the server closes it and the lock goes free. A
        # statement of ours unanswered that long is a silent link, and the session is as good as gone
        self.idle_timeout = idle_timeout
        self.is_leader = False
        self.terms = 0
        self.connection_lost = False

    async def run(self) -> None:
        """Campaign forever; lead while the lock is held; start over when the connection drops."""
        while True:
            try:
                session = await db.session_connection(
                    self.settings, role="leader", idle_timeout=self.idle_timeout
                )
                try:
                    await self._campaign(session)
                finally:
                    # not `async with session`: its rollback on the way out awaits, a cancelled
                    # scope cancels that await too, and the close after it never ran (a leaked
                    # session, seen as a ResourceWarning when a worker stopped while it led)
                    with anyio.CancelScope(shield=True):
                        await session.close()
            except psycopg.OperationalError as exc:
                log.info("worker %s: leader session lost (%s); campaigning again", self.worker_id, exc)
                self.is_leader = False
                self.connection_lost = True
                await anyio.sleep(self.tick)

    async def _campaign(self, session: AsyncConnection[Any]) -> None:
        query = queries.leader_try_lock(self.statements, key=names.leader_lock_key(self.settings.schema))
        # polled, not awaited: a blocking pg_advisory_lock would hide a dead connection from us
        while True:
            # shielded (db.answer_within): a stop waits for the statement's answer
            with db.answer_within(self.idle_timeout, shield=True):
                locked = await queries.fetch_one(session, query)
            if locked:
                await anyio.lowlevel.checkpoint_if_cancelled()  # not leading for a stopping worker
                await self._lead(session)
            await anyio.sleep(self.tick)

    async def _lead(self, session: AsyncConnection[Any]) -> None:
        self.is_leader = True
        self.terms += 1
        self.maintenance.start_leading(after_connection_loss=self.connection_lost)
        log.info("worker %s is now the leader", self.worker_id)
        try:
            mark = queries.leader_mark(self.statements, worker_id=self.worker_id)
            await db.fetch_all_within(self.pool, mark, self.idle_timeout, shield=True)
            while True:
                with db.answer_within(self.idle_timeout, shield=True):
                    await queries.fetch_all(session, queries.session_check())
                await self.maintenance.run_due(session)
                await anyio.sleep(self.tick)
        except psycopg.OperationalError as exc:
            log.warning("leader %s lost its session (%s); stepping down", self.worker_id, exc)
            raise
        finally:
            self.is_leader = False
