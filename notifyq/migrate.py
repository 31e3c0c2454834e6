"""The migration runner: versioned, forward-only, applied under an advisory lock.

migrations/NNNN_name.sql are the only DDL. All pending files apply in one transaction that first
takes a transaction-level advisory lock keyed by the schema, so concurrent `notifyq migrate` calls
queue up and the later ones find nothing left to do. A file changed after it was applied (its
checksum differs from the recorded one) stops the run: migrations are never edited, only added.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection, Connection

from notifyq import names, queries
from notifyq.errors import MigrationError
from notifyq.models import Migration

_FILE_RE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


class MigrationFile(Migration, frozen=True, kw_only=True):
    text: str


def migrations_dir() -> Path:
    """migrations/ of a source checkout, or its copy shipped in the wheel (notifyq/_migrations)."""
    shipped = Path(str(resources.files("notifyq"))) / "_migrations"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parent.parent / "migrations"


def migration_files(directory: Path | None = None) -> list[MigrationFile]:
    found = []
    for path in sorted((directory or migrations_dir()).glob("*.sql")):
        match = _FILE_RE.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        text = path.read_text(encoding="utf-8")
        checksum = hashlib.sha256(text.encode()).hexdigest()
        found.append(MigrationFile(version=int(match[1]), name=match[2], checksum=checksum, text=text))
    return found


def pending(files: Sequence[MigrationFile], applied: Sequence[Migration]) -> list[MigrationFile]:
    """The files still to apply; raises if the applied history and the files disagree."""
    by_version = {f.version: f for f in files}
    for done in applied:
        file = by_version.get(done.version)
        if file is None:
            raise MigrationError(f"migration {done.version} is applied but has no file here")
        if file.checksum != done.checksum:
            raise MigrationError(f"migration {file.version}_{file.name} changed after it was applied")
    done_versions = {m.version for m in applied}
    return [f for f in files if f.version not in done_versions]


async def migrate(conn: AsyncConnection[Any], *, schema: str) -> list[Migration]:
    """Apply pending migrations on `conn` (not autocommit) in one transaction; returns those applied."""
    st = queries.statements(names.schema_name(schema))
    async with conn.transaction():
        await queries.fetch_all(conn, queries.migration_lock(st, key=names.migration_lock_key(schema)))
        await queries.fetch_all(conn, queries.migration_table_create(st))
        todo = pending(migration_files(), await queries.fetch_all(conn, queries.migration_list(st)))
        for file in todo:
            await queries.fetch_all(conn, queries.migration_apply(schema, text=file.text))
            await queries.fetch_all(conn, queries.migration_record(st, migration=file))
    return [Migration(version=f.version, name=f.name, checksum=f.checksum) for f in todo]


def migrate_sync(conn: Connection[Any], *, schema: str) -> list[Migration]:
    """The sync twin of `migrate`, for scripts and test set-up."""
    st = queries.statements(names.schema_name(schema))
    with conn.transaction():
        queries.fetch_all_sync(conn, queries.migration_lock(st, key=names.migration_lock_key(schema)))
        queries.fetch_all_sync(conn, queries.migration_table_create(st))
        todo = pending(migration_files(), queries.fetch_all_sync(conn, queries.migration_list(st)))
        for file in todo:
            queries.fetch_all_sync(conn, queries.migration_apply(schema, text=file.text))
            queries.fetch_all_sync(conn, queries.migration_record(st, migration=file))
    return [Migration(version=f.version, name=f.name, checksum=f.checksum) for f in todo]
