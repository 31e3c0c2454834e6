"""A first end-to-end pass through the core: enqueue, a worker woken by NOTIFY runs the job."""

from __future__ import annotations

import anyio
import pytest

from notifyq import Client, Registry, Settings
from tests.helpers import job_status, running_worker, wait_until

pytestmark = pytest.mark.anyio


async def test_enqueued_job_runs_once_and_succeeds(
    settings: Settings, registry: Registry, client: Client, aconn
) -> None:
    seen: list[int] = []
    ran = anyio.Event()

    @registry.task
    async def record(payload: dict[str, int]) -> None:
        seen.append(payload["n"])
        ran.set()

    async with running_worker(settings, registry, poll_interval=60):
        job_id = await client.enqueue("record", {"n": 7})
        with anyio.fail_after(5):
            await ran.wait()
        await wait_until(lambda: _succeeded(aconn, job_id))
    assert seen == [7]


async def _succeeded(aconn, job_id: int) -> bool:
    return await job_status(aconn, job_id) == "succeeded"
