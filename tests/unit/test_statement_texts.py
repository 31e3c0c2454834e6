"""The named statements of notifyq/sql/*.sql as they are sent."""

from __future__ import annotations

from notifyq.queries import statement_texts


def test_statements_are_sent_without_the_comment_lines_that_document_them() -> None:
    texts = statement_texts()
    assert texts, "no statements found"
    assert [name for name, text in texts.items() if text.lstrip().startswith("--")] == []
    # comments inside a statement stay: they sit beside the SQL they explain
    assert texts["queue_unwait"].startswith("DELETE FROM {schema}.queue_waiters")
    assert "-- only rows not there yet" in texts["queue_wait"]
