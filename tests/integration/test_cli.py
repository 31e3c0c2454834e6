"""The admin CLI: migrate and enqueue from the shell, with clear errors and exit codes."""

from __future__ import annotations

import pytest

from notifyq.cli.main import main


def test_migrate_is_idempotent_from_the_cli(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--database-url", empty_database_url]) == 0
    assert "applied 0001_initial" in capsys.readouterr().out
    assert main(["migrate", "--database-url", empty_database_url]) == 0
    assert "up to date" in capsys.readouterr().out


def test_enqueue_prints_the_job_id(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["enqueue", "--database-url", database_url, "--task", "t", "--json", '{"a": 1}']) == 0
    assert capsys.readouterr().out.strip().isdigit()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "t", "--json", "{bad"], "not valid JSON"),
        (["--task", "t", "--queue", "q" * 41], "invalid queue name"),
        (["--task", "bad name"], "invalid task name"),
    ],
)
def test_bad_input_exits_1_with_a_clear_message(
    database_url: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["enqueue", "--database-url", database_url, *args]) == 1
    assert message in capsys.readouterr().err


def test_an_unreachable_database_is_reported_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    assert main(["migrate", "--database-url", url]) == 1
    assert "cannot reach PostgreSQL" in capsys.readouterr().err


def test_jobs_queues_and_workers_commands(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", database_url]
    assert main(["enqueue", *db, "--task", "t", "--queue", "mail"]) == 0
    job_id = capsys.readouterr().out.strip()
    assert main(["jobs", "list", *db]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:4] == [job_id, "mail", "t", "queued"]
    assert main(["jobs", "show", job_id, *db, "--json"]) == 0
    assert '"status":"queued"' in capsys.readouterr().out
    assert main(["queues", *db]) == 0
    out = capsys.readouterr().out
    assert "mail" in out
    assert "notification queue: 0.0% used" in out
    assert main(["jobs", "retry", job_id, *db]) == 1
    assert "not retried: it is queued" in capsys.readouterr().out
    assert main(["jobs", "cancel", job_id, *db]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["jobs", "retry", job_id, *db]) == 0
    assert main(["jobs", "cancel", "999999", *db]) == 1
    assert main(["workers", *db, "--json"]) == 0
    assert capsys.readouterr().out.strip().endswith("[]")


def test_cron_lists_schedules_with_their_next_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cron", "tests.e2e.cron_tasks"]) == 0
    out = capsys.readouterr().out
    assert "nightly" in out
    assert "Europe/Paris" in out
