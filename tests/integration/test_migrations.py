"""Migrations: versioned, idempotent, safe to run concurrently, any schema, shipped in the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import anyio
import psycopg
import pytest

from notifyq import MigrationError, Registry, Settings
from notifyq.client import Client
from notifyq.migrate import migrate, migrate_sync, migration_files
from tests.helpers import running_worker

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


def test_migrate_records_versions_and_a_second_run_applies_nothing(empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url) as conn:
        first = migrate_sync(conn, schema="notifyq")
        second = migrate_sync(conn, schema="notifyq")
        recorded = conn.execute("SELECT version FROM notifyq.migrations ORDER BY version").fetchall()
    assert [m.version for m in first] == [f.version for f in migration_files()]
    assert second == []
    assert [r[0] for r in recorded] == [m.version for m in first]


async def test_concurrent_migrations_apply_each_file_once(empty_database_url: str) -> None:
    results: list[int] = []

    async def run_one() -> None:
        async with await psycopg.AsyncConnection.connect(empty_database_url) as conn:
            results.append(len(await migrate(conn, schema="notifyq")))

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(run_one)
    assert sorted(results) == [0] * 5 + [len(migration_files())]


def test_an_applied_migration_that_changed_is_refused(empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url) as conn:
        migrate_sync(conn, schema="notifyq")
        conn.execute("UPDATE notifyq.migrations SET checksum = 'edited' WHERE version = 1")
        conn.commit()
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrate_sync(conn, schema="notifyq")


async def test_a_custom_schema_works_end_to_end(empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url) as conn:
        migrate_sync(conn, schema="nq_custom")
    settings = Settings(database_url=empty_database_url, schema="nq_custom")
    registry = Registry()
    done = anyio.Event()

    @registry.task
    async def ping() -> None:
        done.set()

    async with (
        Client(settings, registry=registry) as client,
        running_worker(settings, registry, poll_interval=60),
    ):
        await client.enqueue("ping")
        with anyio.fail_after(10):
            await done.wait()
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT to_regclass('notifyq.jobs')").fetchone() == (None,)


def test_the_wheel_ships_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("notifyq-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for file in migration_files():
        assert f"notifyq/_migrations/{file.version:04d}_{file.name}.sql" in names
    assert "notifyq/sql/worker.sql" in names
    assert "notifyq/py.typed" in names
