"""A PostgreSQL for the demo, the tests and the benchmarks, found the same way everywhere.

In order: `DATABASE_URL` when set (used as is, never reconfigured); else a Docker container through
testcontainers when a Docker engine answers; else an embedded server from the `pgserver` wheel in a
temporary directory. Servers started here are ours to tune (`fast=True` turns fsync off for tests)
and are stopped on exit. Needs the `devdb` extra (testcontainers, pgserver); nothing at run time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
from psycopg import sql

log = logging.getLogger("notifyq.devdb")

DOCKER_IMAGE = "postgres:16-alpine"
# for test servers only: durability traded for speed; benchmarks keep the defaults (fsync on)
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class DevDatabase(msgspec.Struct, frozen=True, kw_only=True):
    """Where the server is and who started it: 'env', 'docker' or 'embedded'."""

    url: str
    source: str
    # the embedded server's data directory and pg_ctl, so fault tests can restart it
    data_dir: str | None = None
    bin_dir: str | None = None

    @property
    def owned(self) -> bool:
        return self.source != "env"


@contextlib.contextmanager
def postgres(*, fast: bool = False) -> Iterator[DevDatabase]:
    """Yield a reachable PostgreSQL; servers started here are stopped when the block exits."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield DevDatabase(url=url, source="env")
        return
    starter = _docker if docker_available() else _embedded
    with starter() as db:
        _tune(db.url, fast=fast)
        yield db


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],  # noqa: S607 - docker from PATH
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and bool(probe.stdout.strip())


@contextlib.contextmanager
def _docker() -> Iterator[DevDatabase]:
    from testcontainers.postgres import PostgresContainer  # noqa: PLC0415 - devdb extra

    log.info("starting PostgreSQL in Docker (%s)", DOCKER_IMAGE)
    with PostgresContainer(DOCKER_IMAGE, driver=None) as container:
        yield DevDatabase(url=container.get_connection_url(), source="docker")


@contextlib.contextmanager
def _embedded() -> Iterator[DevDatabase]:
    import pgserver  # noqa: PLC0415 - devdb extra

    log.info("starting an embedded PostgreSQL (pgserver)")
    data_dir = Path(tempfile.mkdtemp(prefix="notifyq-pg-"))
    server: Any = pgserver.get_server(data_dir, cleanup_mode="delete")
    try:
        bin_dir = str(Path(pgserver.__file__).parent / "pginstall" / "bin")
        yield DevDatabase(url=server.get_uri(), source="embedded", data_dir=str(data_dir), bin_dir=bin_dir)
    finally:
        server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


def _tune(url: str, *, fast: bool) -> None:
    if not fast:
        return
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in FAST_SETTINGS.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        conn.execute("SELECT pg_reload_conf()")


def restart(db: DevDatabase) -> None:
    """Restart an embedded server this module started (fault tests); never a server it did not start."""
    if db.source != "embedded" or db.data_dir is None or db.bin_dir is None:
        raise RuntimeError(f"only an embedded server started here can be restarted, not {db.source!r}")
    log_file = str(Path(db.data_dir) / "restart.log")
    cmd = [str(Path(db.bin_dir) / "pg_ctl"), "-D", db.data_dir, "-w", "-m", "fast", "-l", log_file, "restart"]
    if os.geteuid() == 0:
        # pgserver runs postgres as its own system user when started by root
        cmd = ["runuser", "-u", "pgserver", "--", *cmd]
    # the server must not inherit pipes of ours, or waiting for the command would never end
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)  # noqa: S603 - fixed argv, no shell


def create_database(url: str, name: str, *, template: str | None = None) -> str:
    """CREATE DATABASE `name` (from `template`), returning its URL."""
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(query)
    return database_url(url, name)


def drop_database(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_url(url: str, name: str) -> str:
    """`url` pointed at database `name` (keeps host, port, user and query parameters)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo("", **info)
