"""Connections: the pool for claim/finish/enqueue, the dedicated session connection, JSON adaptation.

Pooled connections are autocommit (each notifyq statement is its own transaction) and work behind
PgBouncer in transaction mode when `Settings.pgbouncer` turns named prepared statements off. LISTEN
and advisory locks need a real session, so they get a connection of their own to `direct_url`.
jsonb values are read and written with orjson, on notifyq's connections only (never globally, so an
application's own psycopg adaptation is left alone).
"""

from __future__ import annotations

import logging
import select
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import orjson
import psycopg
import psycopg.errors
from psycopg import AsyncConnection, Connection
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from notifyq import queries
from notifyq.settings import Settings

log = logging.getLogger("notifyq.db")

R = TypeVar("R")

# psycopg's default: prepare a statement server-side after it ran this many times on a connection
PREPARE_THRESHOLD = 5
POOL_OPEN_TIMEOUT = 30.0
# a session connection (LISTEN, advisory locks) must notice a dead peer even while it only waits:
# TCP keepalives declare it dead after about idle + interval * count = 20 s of silence
SESSION_KEEPALIVES: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


class NoAnswer(psycopg.OperationalError):
    """PostgreSQL did not answer within a client-side deadline: a link that went silent.

    Keepalives cannot see every such link (a NAT or load balancer that lost its flows still answers
    them), so each of the worker's statements has a deadline of its own. A psycopg.OperationalError,
    so every caller retries it like a dropped connection; psycopg closes the connection it cancelled
    and the pool replaces it.
    """


@contextmanager
def answer_within(seconds: float, *, shield: bool = False) -> Iterator[None]:
    """Raise NoAnswer if the block (a statement, with its wait for a pooled connection) runs longer.

    `shield`: a cancellation from outside (a stopping worker) waits for the block to end instead
    of interrupting its statement. Interrupted, psycopg sends the server a cancel request, which
    the same cancellation interrupts in turn (anyio cancels every later await of the scope), so it
    closes the connection with a warning and a pool discards it. The deadline still applies."""
    try:
        with anyio.CancelScope(shield=shield), anyio.fail_after(seconds):
            yield
    except TimeoutError as exc:
        raise NoAnswer(f"no answer from PostgreSQL within {seconds:g}s") from exc


async def fetch_all_within(
    pool: AsyncConnectionPool, query: queries.Query[R], seconds: float, *, shield: bool = False
) -> list[R]:
    """Run `query` on a pooled connection; NoAnswer if it (with the wait for the connection) takes
    longer. `shield` as for `answer_within`."""
    with answer_within(seconds, shield=shield):
        async with pool.connection() as conn:
            return await queries.fetch_all(conn, query)


def _has_input(conn: AsyncConnection[Any] | Connection[Any]) -> bool:
    """Whether an idle pooled connection has something to read: only a server that ended the
    session (its FATAL error, then EOF) sends anything unasked to a connection that does not LISTEN."""
    if conn.closed or conn.broken:
        return True
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return True
    return bool(readable)


async def _check_async(conn: AsyncConnection[Any]) -> None:
    """The pool's check, with a round trip only for a connection with unasked input.

    A terminated backend or a restarted server leaves its error or EOF on the socket, which a
    non-blocking look sees; only then does the round trip run (and raise, so the pool replaces
    the connection). A live connection costs no round trip on the way out of the pool, which
    would otherwise be a second one on every enqueue.
    """
    if _has_input(conn):
        await AsyncConnectionPool.check_connection(conn)


def _check_sync(conn: Connection[Any]) -> None:
    if _has_input(conn):
        ConnectionPool.check_connection(conn)


def _prepare_threshold(settings: Settings) -> int | None:
    return None if settings.pgbouncer else PREPARE_THRESHOLD


def use_orjson(conn: AsyncConnection[Any] | Connection[Any]) -> None:
    set_json_loads(orjson.loads, conn)
    set_json_dumps(orjson.dumps, conn)


async def _configure_async(conn: AsyncConnection[Any]) -> None:
    use_orjson(conn)


async def _configure_async_flush_later(conn: AsyncConnection[Any]) -> None:
    use_orjson(conn)
    await queries.fetch_all(conn, queries.synchronous_commit(on=False, local=False))


def _configure_sync(conn: Connection[Any]) -> None:
    use_orjson(conn)


def _pool_options(settings: Settings, name: str) -> dict[str, Any]:
    """What the async and the sync pool share: size, autocommit sessions, naming."""
    return {
        "conninfo": settings.database_url,
        "min_size": settings.pool_min_size,
        "max_size": settings.pool_max_size,
        "kwargs": {
            "autocommit": True,
            "prepare_threshold": _prepare_threshold(settings),
            "application_name": "notifyq",
        },
        "open": False,
        "name": name,
        "timeout": POOL_OPEN_TIMEOUT,
    }


def async_pool(
    settings: Settings, *, name: str = "notifyq", check: bool = True, synchronous_commit: bool = True
) -> AsyncConnectionPool:
    """An unopened pool; open it with `await pool.open(wait=True)` or `async with`.

    `check` tests each connection as it leaves the pool (`_check_async`: a look at its socket, and
    a round trip when the server sent something), so a connection killed while idle is replaced
    instead of failing the caller. Clients want that; the worker, whose every part retries on
    errors, skips it on its hot path.

    `synchronous_commit=False` (the worker's own pool, see WorkerSettings.synchronous_commit): the
    pool's sessions commit without waiting for the WAL flush. Never behind PgBouncer in transaction
    mode, where a session setting would carry over to other clients' transactions (enqueues).
    """
    check_fn = _check_async if check else None
    flush_later = not synchronous_commit and not settings.pgbouncer
    configure = _configure_async_flush_later if flush_later else _configure_async
    return AsyncConnectionPool(**_pool_options(settings, name), configure=configure, check=check_fn)


def sync_pool(settings: Settings, *, name: str = "notifyq-sync") -> ConnectionPool:
    return ConnectionPool(**_pool_options(settings, name), configure=_configure_sync, check=_check_sync)


async def session_connection(
    settings: Settings, *, role: str, idle_timeout: float | None = None
) -> AsyncConnection[Any]:
    """A dedicated autocommit connection to `direct_url`, for LISTEN and session advisory locks.

    `role` becomes its application_name ("notifyq listener", "notifyq leader"), so operators (and
    tests) can find it in pg_stat_activity. With `idle_timeout` the server closes the session once
    it has sat idle that long (`idle_session_timeout`): a session whose process froze gives its
    advisory locks back.
    """
    conn = await AsyncConnection.connect(
        settings.direct_url,
        autocommit=True,
        prepare_threshold=None,
        application_name=f"notifyq {role}",
        **SESSION_KEEPALIVES,
    )
    use_orjson(conn)
    if idle_timeout is not None:
        await _set_idle_timeout(conn, idle_timeout)
    return conn


async def _set_idle_timeout(conn: AsyncConnection[Any], seconds: float) -> None:
    # a statement, not the `options` connection parameter, which would replace the URL's own
    try:
        await queries.fetch_all(conn, queries.session_idle_timeout(seconds))
    except psycopg.errors.UndefinedObject:
        # PostgreSQL before 14: no idle_session_timeout; a frozen leader then keeps its lock until
        # its connection dies (keepalives), as before
        log.warning("PostgreSQL %s has no idle_session_timeout", conn.info.server_version)
    except BaseException:
        await conn.close()
        raise


async def direct_connection(settings: Settings) -> AsyncConnection[Any]:
    """A transactional connection to `direct_url` (migrations)."""
    conn = await AsyncConnection.connect(settings.direct_url, prepare_threshold=None)
    use_orjson(conn)
    return conn


def direct_connection_sync(settings: Settings) -> Connection[Any]:
    conn = Connection.connect(settings.direct_url, prepare_threshold=None)
    use_orjson(conn)
    return conn
