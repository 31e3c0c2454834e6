"""The Litestar application: routes over `Client`, problem details, bearer auth, the dashboard.

Litestar was picked because it decodes and validates msgspec Structs natively (the models we
already have) and generates the OpenAPI document from them; uvicorn serves it.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
import orjson
import psycopg
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from notifyq import names
from notifyq.api import schemas as s
from notifyq.api.leasing import LeaseBroker
from notifyq.api.metrics import Metrics
from notifyq.client import Client
from notifyq.errors import JobNotFoundError, NotifyqError
from notifyq.models import Job, JobStatus, Outcome
from notifyq.settings import Settings
from notifyq.tasks import Registry
from notifyq.worker.listener import Listener
from notifyq.worker.registration import Registration

MAX_BODY = 1_048_576
STATIC = Path(__file__).parent / "static"
PROBLEM = "application/problem+json"


class ApiError(HTTPException):
    """An error with a stable problem-detail `code`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(status_code=status, detail=detail)
        self.code = code


def problem(status: int, code: str, detail: str) -> Response[Any]:
    body = {
        "type": f"urn:notifyq:problem:{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
    }
    return Response(body, status_code=status, media_type=PROBLEM)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    500: "internal_error",
}


def on_http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code = getattr(exc, "code", None) or _CODES.get(exc.status_code, "error")
    if code == "bad_request" and "validation" in str(exc.detail).lower():
        code = "invalid_request"
    return problem(exc.status_code, code, str(exc.detail))


def on_notifyq_error(_: Request[Any, Any, Any], exc: NotifyqError) -> Response[Any]:
    if isinstance(exc, JobNotFoundError):
        return problem(404, "job_not_found", str(exc))
    return problem(422, "invalid_job", str(exc))


def on_database_error(_: Request[Any, Any, Any], exc: psycopg.Error) -> Response[Any]:
    return problem(503, "database_unavailable", type(exc).__name__)


def client_of(state: State) -> Client:
    client: Client = state.client
    return client


def auth_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    token: str | None = connection.app.state.token
    if token is None or connection.scope["path"] in ("/healthz", "/", "/dashboard"):
        return
    header = connection.headers.get("authorization", "")
    if not hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        raise ApiError(401, "unauthorized", "a valid bearer token is required")


def _holder(token: str) -> tuple[uuid.UUID, int]:
    decoded = s.decode_token(token)
    if decoded is None:
        raise ApiError(400, "bad_token", "malformed lease token")
    return decoded


# -- jobs -----------------------------------------------------------------------------------------


@post("/v1/jobs", status_code=201, tags=["jobs"])
async def enqueue(
    state: State,
    data: JSONBody[s.EnqueueRequest],
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", max_length=200)] = None,
) -> s.Enqueued:
    client = client_of(state)
    job_id = await client.enqueue(
        data.task,
        data.payload,
        queue=data.queue,
        priority=data.priority,
        max_attempts=data.max_attempts,
        delay=data.delay,
        run_at=data.run_at,
        idempotency_key=idempotency_key,
    )
    state.metrics.enqueued.labels(data.queue or "default").inc()
    return s.Enqueued(id=job_id)


@get("/v1/jobs/{job_id:int}", tags=["jobs"])
async def show(state: State, job_id: FromPath[int]) -> Job:
    return await client_of(state).get(job_id)


@get("/v1/jobs", tags=["jobs"])
async def listing(
    state: State,
    *,
    queue: FromQuery[str | None] = None,
    task: FromQuery[str | None] = None,
    status: FromQuery[JobStatus | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
) -> s.JobPage:
    before = None
    if cursor is not None and (before := s.decode_cursor(cursor)) is None:
        raise ApiError(400, "bad_cursor", "malformed cursor")
    for kind, name in (("queue", queue), ("task", task)):
        if name is not None:
            _valid(kind, name)
    jobs = await client_of(state).list_jobs(queue=queue, task=task, status=status, before=before, limit=limit)
    next_cursor = s.encode_cursor(jobs[-1].id) if len(jobs) == limit else None
    return s.JobPage(jobs=jobs, next_cursor=next_cursor)


def _valid(kind: str, name: str) -> None:
    try:
        (names.queue_name if kind == "queue" else names.task_name)(name)
    except ValueError as exc:
        raise ApiError(400, f"bad_{kind}", str(exc)) from None


@post("/v1/jobs/{job_id:int}/cancel", status_code=200, tags=["jobs"])
async def cancel(state: State, job_id: FromPath[int]) -> Response[s.CancelResponse]:
    client = client_of(state)
    before = await client.get(job_id)
    if before.status.is_final:
        raise ApiError(409, "already_finished", f"job {job_id} is already {before.status.value}")
    result = await client.cancel(job_id)
    if result.status is None:
        raise ApiError(404, "job_not_found", f"job {job_id} not found")
    body = s.CancelResponse(id=job_id, status=result.status.value, requested=result.requested)
    return Response(body, status_code=202 if result.requested else 200)


@post("/v1/jobs/{job_id:int}/retry", status_code=200, tags=["jobs"])
async def retry(state: State, job_id: FromPath[int]) -> s.RetryResponse:
    result = await client_of(state).retry(job_id)
    if not result.retried:
        raise ApiError(409, "not_retryable", f"job {job_id} is {result.previous.value}")
    return s.RetryResponse(id=job_id, previous=result.previous.value, status=JobStatus.QUEUED.value)


# -- leases for workers in other languages ---------------------------------------------------------


@post("/v1/lease", status_code=200, tags=["workers"])
async def lease(state: State, data: JSONBody[s.LeaseRequest]) -> s.LeaseResponse:
    for queue in data.queues:
        _valid("queue", queue)
    broker: LeaseBroker = state.broker
    holder, jobs = await broker.lease(
        data.queues, limit=data.limit, lease_seconds=data.lease_seconds, wait=data.wait
    )
    state.metrics.leased(jobs, data.lease_seconds)
    leased = [
        s.LeasedJob(
            id=j.id,
            queue=j.queue,
            task=j.task,
            payload=orjson.loads(j.payload),
            attempt=j.attempts,
            max_attempts=j.max_attempts,
            lease_expires_at=j.lease_expires_at,
            token=s.encode_token(holder, j.attempts),
        )
        for j in jobs
    ]
    return s.LeaseResponse(jobs=leased)


async def _require_job(client: Client, job_id: int) -> None:
    await client.get(job_id)  # raises JobNotFoundError: 404 rather than a token conflict


def _lost(job_id: int) -> ApiError:
    return ApiError(409, "lease_lost", f"this token no longer holds job {job_id}")


@post("/v1/jobs/{job_id:int}/ack", status_code=200, tags=["workers"])
async def ack(state: State, job_id: FromPath[int], data: JSONBody[s.TokenRequest]) -> s.Finished:
    holder, attempt = _holder(data.token)
    client = client_of(state)
    if not await client.ack(job_id, holder=holder, attempt=attempt):
        await _require_job(client, job_id)
        raise _lost(job_id)
    state.metrics.finished.labels(Outcome.SUCCEEDED.value).inc()
    return s.Finished(id=job_id, ok=True)


@post("/v1/jobs/{job_id:int}/fail", status_code=200, tags=["workers"])
async def fail(state: State, job_id: FromPath[int], data: JSONBody[s.FailRequest]) -> s.Finished:
    holder, attempt = _holder(data.token)
    client = client_of(state)
    done = await client.fail(
        job_id, holder=holder, attempt=attempt, reason=data.reason, retry_in=data.retry_in
    )
    if done is None:
        raise _lost(job_id)
    state.metrics.finished.labels(done.value).inc()
    return s.Finished(id=job_id, ok=True)


@post("/v1/jobs/{job_id:int}/heartbeat", status_code=200, tags=["workers"])
async def heartbeat(
    state: State, job_id: FromPath[int], data: JSONBody[s.HeartbeatRequest]
) -> s.HeartbeatResponse:
    holder, attempt = _holder(data.token)
    client = client_of(state)
    held = await client.heartbeat(job_id, holder=holder, attempt=attempt, lease_seconds=data.lease_seconds)
    if held is None:
        await _require_job(client, job_id)
        raise _lost(job_id)
    return s.HeartbeatResponse(id=job_id, cancel_requested=held.cancel_requested)


# -- the system ---------------------------------------------------------------------------------------


@get("/v1/queues", tags=["system"])
async def queues(state: State) -> s.QueuesResponse:
    client = client_of(state)
    return s.QueuesResponse(
        queues=await client.queue_stats(), notification_queue_usage=await client.notification_queue_usage()
    )


@get("/v1/workers", tags=["system"])
async def workers(state: State) -> s.WorkersResponse:
    return s.WorkersResponse(workers=await client_of(state).list_workers())


@get("/healthz", tags=["system"])
async def healthz(state: State) -> Response[s.Health]:
    try:
        with anyio.fail_after(5):
            await client_of(state).notification_queue_usage()
    except (psycopg.Error, TimeoutError):
        return Response(s.Health(status="database unreachable"), status_code=503)
    return Response(s.Health(status="ok"))


@get("/metrics", tags=["system"], media_type="text/plain; version=0.0.4")
async def metrics(state: State) -> bytes:
    client = client_of(state)
    stats, usage = await client.queue_stats(), await client.notification_queue_usage()
    listener: Listener = state.listener
    return state.metrics.render(stats, usage, listener.notifications)  # type: ignore[no-any-return]


@get(["/", "/dashboard"], media_type=MediaType.HTML, include_in_schema=False)
async def dashboard() -> bytes:
    return (STATIC / "dashboard.html").read_bytes()


# -- the application ------------------------------------------------------------------------------------


def create_app(
    settings: Settings,
    *,
    token: str | None = None,
    listen_queues: Sequence[str] = ("default",),
    registry: Registry | None = None,
) -> Litestar:
    """The API app; its lifespan opens the client, the listener and the registry entry."""
    listen_queues = [names.queue_name(q) for q in listen_queues]

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        client = Client(settings, registry=registry or Registry())
        worker_id = uuid.uuid4()
        broker = LeaseBroker(client, worker_id=worker_id, listened=listen_queues)
        registration = Registration(
            pool=client.pool,
            statements=client.statements,
            worker_id=worker_id,
            queues=listen_queues,
            concurrency=1,  # the registry requires >= 1; the API runs no jobs itself
            beat_interval=5.0,
        )
        listener = Listener(
            settings,
            queue_channels=[names.queue_channel(settings.schema, q) for q in listen_queues],
            cancel_channel=names.cancel_channel(settings.schema),
            waker=broker.waker,
            on_cancel=lambda _: None,
            reconnect_max_delay=5.0,
            on_connect=registration.on_listener_connect,
        )
        app.state.update(client=client, broker=broker, listener=listener, metrics=Metrics(), token=token)
        async with client, anyio.create_task_group() as tg:
            await tg.start(listener.run)
            tg.start_soon(registration.run)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await registration.unregister()

    return Litestar(
        route_handlers=[
            enqueue,
            show,
            listing,
            cancel,
            retry,
            lease,
            ack,
            fail,
            heartbeat,
            queues,
            workers,
            healthz,
            metrics,
            dashboard,
        ],
        lifespan=[lifespan],
        guards=[auth_guard],
        exception_handlers={
            HTTPException: on_http_error,
            NotifyqError: on_notifyq_error,
            psycopg.Error: on_database_error,
        },
        request_max_body_size=MAX_BODY,
        openapi_config=OpenAPIConfig(
            title="notifyq", version="1", path="/schema", render_plugins=[SwaggerRenderPlugin()]
        ),
        state=State({"token": token}),
        debug=False,
    )
