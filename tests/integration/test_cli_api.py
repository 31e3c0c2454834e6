"""`notifyq ping` and `notifyq api`: a real API process on a loopback port, and a refusal to serve
a non-loopback address without a token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from notifyq.cli.common import is_loopback, parse_bind
from notifyq.cli.main import main
from tests.api_process import api_process as api_process_at


def test_ping_reports_a_reachable_database(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ping", "--database-url", database_url]) == 0
    assert capsys.readouterr().out.startswith("ok: database reachable")
    assert main(["ping", "--database-url", database_url, "--json"]) == 0
    assert '"ok":true' in capsys.readouterr().out


def test_ping_fails_with_exit_1_on_an_unreachable_database(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ping", "--database-url", "postgresql://nobody@127.0.0.1:1/x", "--timeout", "1"]) == 1
    assert "cannot reach PostgreSQL" in capsys.readouterr().err


def test_api_refuses_a_public_bind_without_a_token(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFYQ_API_TOKEN", raising=False)
    assert main(["api", "--bind", "0.0.0.0:8089", "--database-url", database_url]) == 1
    assert "requires --token" in capsys.readouterr().err


def test_bind_parsing_and_loopback_detection() -> None:
    assert parse_bind("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    assert is_loopback("localhost")
    assert is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("example.org")


@pytest.fixture
def api_process(database_url: str) -> Iterator[str]:
    with api_process_at(database_url, "t0k") as base:
        yield base


def test_notifyq_api_serves_jobs_over_real_http(api_process: str) -> None:
    auth = {"Authorization": "Bearer t0k"}
    created = httpx.post(f"{api_process}/v1/jobs", json={"task": "t"}, headers=auth, timeout=10)
    assert created.status_code == 201
    job_id = created.json()["id"]
    leased = httpx.post(f"{api_process}/v1/lease", json={"queues": ["default"]}, headers=auth, timeout=10)
    token = leased.json()["jobs"][0]["token"]
    acked = httpx.post(f"{api_process}/v1/jobs/{job_id}/ack", json={"token": token}, headers=auth, timeout=10)
    assert acked.status_code == 200
    job = httpx.get(f"{api_process}/v1/jobs/{job_id}", headers=auth, timeout=10).json()
    assert job["status"] == "succeeded"
    assert httpx.get(f"{api_process}/v1/jobs/{job_id}", timeout=10).status_code == 401
