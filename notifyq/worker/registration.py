"""The worker's entry in the workers registry, and the advisory lock that proves it alive.

The lock is a session lock on the listening connection, taken (blocking, so a leader's instant
probe only delays it) on every (re)connect before the row is written. While the process lives and
its listener is connected the lock is held; when the process dies Postgres drops it with the
session, which is how the leader tells a dead worker in about a second instead of a lease.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

import anyio
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from notifyq import db, names, queries

log = logging.getLogger("notifyq.worker.registration")


class Registration:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        statements: queries.Statements,
        worker_id: uuid.UUID,
        queues: Sequence[str],
        concurrency: int,
        beat_interval: float,
        db_timeout: float = 10.0,
    ) -> None:
        self.pool = pool
        self.statements = statements
        self.worker_id = worker_id
        self.queues = list(queues)
        self.concurrency = concurrency
        self.beat_interval = beat_interval
        self.db_timeout = db_timeout
        self.lock_key = names.worker_lock_key(worker_id)

    async def on_listener_connect(self, conn: AsyncConnection[Any]) -> None:
        """Take the liveness lock on the listening session, then (re)write the registry row."""
        with db.answer_within(self.db_timeout):
            await queries.fetch_all(
                conn, queries.worker_lock_takeover(self.statements, lock_key=self.lock_key)
            )
            await queries.fetch_all(conn, queries.worker_lock(self.statements, lock_key=self.lock_key))
        register = queries.worker_register(
            self.statements,
            worker_id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self.queues,
            concurrency=self.concurrency,
            lock_key=self.lock_key,
        )
        await queries.fetch_all(conn, register)

    async def run_once(self) -> bool:
        """Record a beat; False if the row is gone (the leader judged this worker dead)."""
        beat = queries.worker_beat(self.statements, worker_id=self.worker_id)
        return bool(await db.fetch_all_within(self.pool, beat, self.db_timeout, shield=True))

    async def run(self) -> None:
        while True:
            await anyio.sleep(self.beat_interval)
            try:
                if not await self.run_once():
                    log.error(
                        "worker %s is missing from the registry; it re-registers on reconnect", self.worker_id
                    )
            except psycopg.Error as exc:
                log.warning("registry beat failed (%s)", exc)

    async def unregister(self) -> None:
        # the delete takes the worker's queue_waiters rows along, and would wait for a producer's
        # open transaction holding one: it gives up after db_timeout, on the server (a row left
        # behind is the leader's, once it sees the worker's lock free)
        st = self.statements
        with anyio.CancelScope(shield=True):
            try:
                with db.answer_within(2 * self.db_timeout):
                    async with self.pool.connection() as conn, conn.transaction():
                        await queries.fetch_all(conn, queries.lock_timeout_local(st, seconds=self.db_timeout))
                        await queries.fetch_all(conn, queries.worker_delete(st, worker_id=self.worker_id))
            except psycopg.Error as exc:
                log.warning("could not remove worker %s from the registry (%s)", self.worker_id, exc)
