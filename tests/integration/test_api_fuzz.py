"""The OpenAPI document fuzzed with schemathesis against a real `notifyq api` process: no 5xx.

Examples are bounded per operation so the run stays well under a minute; lease long-polls are
capped at a fraction of a second so generated `wait` values do not stall the run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from notifyq import devdb
from tests.api_process import api_process

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def fuzz_api(pg_server: devdb.DevDatabase, template_db: str) -> Iterator[str]:
    name = f"notifyq_f_{uuid.uuid4().hex[:16]}"
    url = devdb.create_database(pg_server.url, name, template=template_db)
    try:
        with api_process(url, TOKEN) as base:
            yield base
    finally:
        devdb.drop_database(pg_server.url, name)


@pytest.fixture(scope="module")
def api_schema(fuzz_api: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzz_api}/schema/openapi.json", headers=AUTH)


def test_no_generated_request_causes_a_server_error(
    api_schema: schemathesis.BaseSchema, fuzz_api: str
) -> None:
    """Each operation in turn (schemathesis's pytest plugin trips over this pytest version, so its
    strategies are driven by hypothesis directly)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            if isinstance(case.body, dict) and "wait" in case.body:
                case.body["wait"] = 0.2
            response = case.call(base_url=fuzz_api, headers=AUTH, timeout=10)
            calls.append(response.status_code)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"

        check()
    assert len(calls) > 100
