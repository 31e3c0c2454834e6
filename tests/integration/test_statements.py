"""Every named statement of notifyq/sql/*.sql prepares against the migrated schema: its syntax,
tables, columns and parameter types are right before any code path runs it."""

from __future__ import annotations

import re

import psycopg
import pytest

from notifyq import queries

PLACEHOLDER = re.compile(rb"%\((\w+)\)s")
TEXTS = queries.statement_texts()


def _numbered(statement: bytes) -> bytes:
    """psycopg's %(name)s placeholders as the server's $n (a name used twice keeps its number)."""
    numbers: dict[bytes, int] = {}
    return PLACEHOLDER.sub(lambda m: b"$%d" % numbers.setdefault(m.group(1), len(numbers) + 1), statement)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_the_statement_prepares_on_the_migrated_schema(name: str, database_url: str) -> None:
    statement = queries.statements("notifyq").sql(name)
    if statement.lstrip().upper().startswith(b"COPY"):
        pytest.skip("COPY cannot be prepared; test_enqueue's bulk tests run it")
    with psycopg.connect(database_url, autocommit=True) as conn:
        if name == "migration_table_create":
            # several DDL commands, no parameters: they run, in a transaction rolled back after
            with conn.transaction():
                conn.execute(statement)
                raise psycopg.Rollback
            return
        result = conn.pgconn.prepare(name.encode(), _numbered(statement))
        assert result.status == psycopg.pq.ExecStatus.COMMAND_OK, result.error_message.decode()
