"""The listener: one dedicated session connection per worker, reading notifications continuously.

It never blocks on work: a queue notification only wakes the waker (or sets its timer), a cancel
notification only flags the running job, a job handed over on the worker's own channel (a producer
claimed it for this worker, migrations/0008_hand_over.sql) only goes to the executor. A dropped
connection (killed backend, restarted database) is replaced with capped exponential backoff while
the rest of the worker keeps running; after each (re)connect it wakes the claimer, because
notifications sent while it was away are lost (and hand-overs sent meanwhile are looked for:
`on_reconnect`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import psycopg
from anyio.abc import TaskStatus
from psycopg import AsyncConnection

from notifyq import db, queries
from notifyq.settings import Settings
from notifyq.worker.waker import Waker

log = logging.getLogger("notifyq.worker.listener")

INITIAL_RECONNECT_DELAY = 0.05
# how long notifies() may wait before the session is checked with a round trip
LIVENESS_INTERVAL = 10.0


class Listener:
    def __init__(
        self,
        settings: Settings,
        *,
        queue_channels: Sequence[str],
        cancel_channel: str,
        waker: Waker,
        on_cancel: Callable[[int], None],
        reconnect_max_delay: float,
        hand_over_channel: str | None = None,
        on_hand_over: Callable[[str], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
        on_connect: Callable[[AsyncConnection[Any]], Any] | None = None,
        db_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.queue_channels = tuple(queue_channels)
        self.cancel_channel = cancel_channel
        self.waker = waker
        self.on_cancel = on_cancel
        self.hand_over_channel = hand_over_channel
        self.on_hand_over = on_hand_over
        self.on_reconnect = on_reconnect
        self.reconnect_max_delay = reconnect_max_delay
        self.on_connect = on_connect
        self.db_timeout = db_timeout
        self.connects = 0
        self.notifications = 0
        self._conn: AsyncConnection[Any] | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen forever. The first connection must succeed (a bad URL fails the worker's start)."""
        conn = self._conn = await self._connect()
        task_status.started()
        try:
            while True:
                try:
                    await self._listen(conn)
                except psycopg.OperationalError as exc:
                    log.warning("listener connection lost (%s); reconnecting", exc)
                await conn.close()
                conn = self._conn = await self._reconnect(INITIAL_RECONNECT_DELAY)
        finally:
            with anyio.CancelScope(shield=True):
                await conn.close()

    async def _reconnect(self, delay: float) -> AsyncConnection[Any]:
        while True:
            await anyio.sleep(delay)
            try:
                return await self._connect()
            except psycopg.OperationalError as exc:
                delay = min(delay * 2, self.reconnect_max_delay)
                log.warning("listener reconnect failed (%s); next try in %.2fs", exc, delay)

    async def _connect(self) -> AsyncConnection[Any]:
        conn = await db.session_connection(self.settings, role="listener")
        try:
            own = () if self.hand_over_channel is None else (self.hand_over_channel,)
            for channel in (*own, *self.queue_channels, self.cancel_channel):
                await queries.fetch_all(conn, queries.channel_listen(channel))
            if self.on_connect is not None:
                await self.on_connect(conn)
        except BaseException:
            await conn.close()
            raise
        if self.connects and self.on_reconnect is not None:
            self.on_reconnect()
        self.connects += 1
        # anything sent while we were not listening is lost: claim now
        self.waker.wake()
        return conn

    async def _listen(self, conn: AsyncConnection[Any]) -> None:
        while True:
            async for notify in conn.notifies(timeout=LIVENESS_INTERVAL):
                self._handle(notify.channel, notify.payload)
            # a link that went silent without closing never ends notifies(), but fails this;
            # shielded, as the worker's other bookkeeping statements: a stop waits for its answer
            with db.answer_within(self.db_timeout, shield=True):
                await queries.fetch_all(conn, queries.session_check())

    def _handle(self, channel: str, payload: str) -> None:
        self.notifications += 1
        if channel == self.hand_over_channel and self.on_hand_over is not None:
            self.on_hand_over(payload)
            return
        if channel == self.cancel_channel:
            if payload.isdigit():
                self.on_cancel(int(payload))
            return
        if not payload:
            self.waker.wake()
            return
        try:
            self.waker.schedule(float(payload))
        except ValueError:
            self.waker.wake()
