"""An in-process API for tests: the Litestar app over the test database, with httpx's ASGI client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from notifyq import Settings
from notifyq.api import create_app


@asynccontextmanager
async def api_client(settings: Settings, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, **options)
    # the lifespan runs in this event loop (AsyncTestClient would run it in a portal thread, and the
    # listener's wake-ups could not reach requests waiting in this loop)
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def lease_one(http: httpx.AsyncClient, queue: str = "default", **body: Any) -> dict[str, Any]:
    response = await http.post("/v1/lease", json={"queues": [queue], **body})
    assert response.status_code == 200, response.text
    jobs: list[dict[str, Any]] = response.json()["jobs"]
    assert len(jobs) == 1
    return jobs[0]
