"""Fixtures: one PostgreSQL per session, one fresh database per test, cloned from a migrated template.

The server comes from notifyq.devdb (DATABASE_URL, else Docker, else an embedded pgserver), so the
suite never assumes a running Postgres. Each test gets its own database: tests cannot see each
other's rows, notifications or advisory locks.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from notifyq import Client, Registry, Settings, SyncClient, devdb
from notifyq.migrate import migrate_sync
from notifyq.settings import DEFAULT_SCHEMA


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[devdb.DevDatabase]:
    with devdb.postgres(fast=True) as server:
        yield server


@pytest.fixture(scope="session")
def template_db(pg_server: devdb.DevDatabase) -> Iterator[str]:
    name = f"notifyq_tmpl_{os.getpid()}"
    devdb.drop_database(pg_server.url, name)
    url = devdb.create_database(pg_server.url, name)
    with psycopg.connect(url) as conn:
        migrate_sync(conn, schema=DEFAULT_SCHEMA)
    yield name
    devdb.drop_database(pg_server.url, name)


@pytest.fixture
def database_url(pg_server: devdb.DevDatabase, template_db: str) -> Iterator[str]:
    name = f"notifyq_t_{uuid.uuid4().hex[:16]}"
    url = devdb.create_database(pg_server.url, name, template=template_db)
    yield url
    devdb.drop_database(pg_server.url, name)


@pytest.fixture
def empty_database_url(pg_server: devdb.DevDatabase) -> Iterator[str]:
    """A database with no notifyq schema, for migration tests."""
    name = f"notifyq_e_{uuid.uuid4().hex[:16]}"
    url = devdb.create_database(pg_server.url, name)
    yield url
    devdb.drop_database(pg_server.url, name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, pool_max_size=8)


@pytest.fixture
def registry() -> Registry:
    """A registry of the test's own, so task names never collide across tests."""
    return Registry()


@pytest.fixture
async def client(settings: Settings, registry: Registry) -> AsyncIterator[Client]:
    async with Client(settings, registry=registry) as c:
        yield c


@pytest.fixture
def sync_client(settings: Settings, registry: Registry) -> Iterator[SyncClient]:
    with SyncClient(settings, registry=registry) as c:
        yield c


@pytest.fixture
async def aconn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    """A plain autocommit connection for set-up and assertions in SQL."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn
