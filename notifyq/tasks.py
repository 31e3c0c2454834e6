"""Tasks: the `@task` decorator, the registry, payload types, and the retry policy of each task.

A task's payload type is its handler's first parameter annotation (a msgspec Struct, a dataclass, a
dict, anything msgspec can decode; unannotated means any JSON). Payloads are validated and encoded
at enqueue, so a bad payload fails in the caller, and decoded into that type in the worker. A
handler may also take a `JobContext`-annotated parameter to learn which job and attempt it runs.
Task names are unique in a registry; registering a name twice is an error at import time.
"""

from __future__ import annotations

import inspect
import itertools
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import msgspec

from notifyq import names
from notifyq.backoff import DEFAULT_POLICY, RetryPolicy
from notifyq.errors import NotifyqError, PayloadError
from notifyq.models import NewJob
from notifyq.schedules import CatchUp, Schedule
from notifyq.settings import DEFAULT_QUEUE

DEFAULT_MAX_ATTEMPTS = 20
MAX_PAYLOAD_BYTES = 1 << 20
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# priority is a smallint column
SMALLINT_MIN, SMALLINT_MAX = -32768, 32767

Handler = Callable[..., Any]
RetryDelay = RetryPolicy | Callable[[int], float]


class JobContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a handler may learn about the job it runs (declare a parameter of this type)."""

    job_id: int
    task: str
    queue: str
    attempt: int
    max_attempts: int
    created_at: datetime

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


class Task:
    """A registered handler and its defaults. Call `enqueue` (async) or `enqueue_sync` to send one."""

    def __init__(
        self,
        fn: Handler,
        *,
        name: str,
        queue: str,
        max_attempts: int,
        retry: RetryDelay,
        timeout: float | None,
        priority: int,
    ) -> None:
        self.fn = fn
        self.name = names.task_name(name)
        self.queue = names.queue_name(queue)
        self.max_attempts = _positive_int("max_attempts", max_attempts)
        self.retry = retry
        self.timeout = timeout
        self.priority = priority
        self.is_async = inspect.iscoroutinefunction(fn)
        self.payload_param, self.payload_type, self.context_param = _signature(fn)
        # built at first use: a payload type may name classes defined after the handler
        self._json_decoder: msgspec.json.Decoder[Any] | None = None

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the handler directly (tests, scripts), bypassing the queue."""
        return self.fn(*args, **kwargs)

    # -- payloads ----------------------------------------------------------------------------

    def encode(self, payload: Any) -> str:
        """Validate `payload` against the payload type and encode it as JSON text: the JSON of the
        typed value, as the worker will decode it."""
        if self.payload_param is None:
            if payload is not None:
                raise PayloadError(self.name, "this task takes no payload")
            return "null"
        return encode_payload(self.name, self._typed(payload))

    def _typed(self, payload: Any) -> Any:
        """`payload` as the payload type. Plain JSON data is decoded from its JSON as the worker
        will: the same verdict and value as msgspec.convert, in half the time (1.0 against 2.0 us
        a dict[str, float], with the walk of `_plain_json`); the rest, and any failure, is left to
        msgspec.convert, which also words the error."""
        if _plain_json(payload):
            try:
                return self._decoder().decode(msgspec.json.encode(payload))
            except (ValueError, OverflowError, msgspec.DecodeError):
                pass
        try:
            return msgspec.convert(payload, self.payload_type, from_attributes=True)
        except msgspec.ValidationError as exc:
            raise PayloadError(self.name, f"does not match {_type_name(self.payload_type)}: {exc}") from None
        except RecursionError:
            raise PayloadError(self.name, "is nested too deeply to be encoded as JSON") from None

    def _decoder(self) -> msgspec.json.Decoder[Any]:
        if self._json_decoder is None:
            self._json_decoder = msgspec.json.Decoder(self.payload_type)
        return self._json_decoder

    def decode(self, text: str) -> Any:
        """The payload of a claimed job, as the handler's type; PayloadError if it does not fit."""
        if self.payload_param is None:
            return None
        try:
            return self._decoder().decode(text)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise PayloadError(self.name, f"does not match {_type_name(self.payload_type)}: {exc}") from None

    def arguments(self, payload: Any, context: Callable[[], JobContext]) -> dict[str, Any]:
        """Keyword arguments for the handler; the context is built only if the handler takes it."""
        kwargs: dict[str, Any] = {}
        if self.payload_param is not None:
            kwargs[self.payload_param] = payload
        if self.context_param is not None:
            kwargs[self.context_param] = context()
        return kwargs

    def retry_delay(self, attempt: int, draw: float) -> float:
        if isinstance(self.retry, RetryPolicy):
            return self.retry.delay(attempt, draw)
        return max(0.0, float(self.retry(attempt)))

    # -- enqueue -----------------------------------------------------------------------------

    async def enqueue(self, payload: Any = None, **options: Any) -> int:
        """Enqueue one job of this task with the default client (see `notifyq.enqueue`)."""
        from notifyq import client  # noqa: PLC0415 - client imports tasks; resolved at call time

        return await client.enqueue(self, payload, **options)

    def enqueue_sync(self, payload: Any = None, **options: Any) -> int:
        """The sync twin of `enqueue` (see `notifyq.sync.enqueue`)."""
        from notifyq import sync  # noqa: PLC0415 - sync imports tasks; resolved at call time

        return sync.enqueue(self, payload, **options)


class Registry:
    """Task name -> Task. Workers run the tasks of one registry; the module-level one by default."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self.schedules: dict[str, Schedule] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, name: str) -> Task | None:
        return self._tasks.get(name)

    def add(self, task: Task) -> Task:
        existing = self._tasks.get(task.name)
        if existing is not None and existing.fn is not task.fn:
            raise NotifyqError(f"task {task.name!r} is already registered by {existing.fn!r}")
        self._tasks[task.name] = task
        return task

    @typing.overload
    def task(
        self,
        fn: Handler,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry: RetryDelay = DEFAULT_POLICY,
        timeout: float | None = None,
        priority: int = 0,
    ) -> Task: ...

    @typing.overload
    def task(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry: RetryDelay = DEFAULT_POLICY,
        timeout: float | None = None,
        priority: int = 0,
    ) -> Callable[[Handler], Task]: ...

    def task(
        self,
        fn: Handler | None = None,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry: RetryDelay = DEFAULT_POLICY,
        timeout: float | None = None,
        priority: int = 0,
    ) -> Task | Callable[[Handler], Task]:
        """Register a handler: `@registry.task` or `@registry.task(queue="mail", timeout=30)`.
        Either way the name is bound to the `Task` (typed: `noop.enqueue(...)` checks under mypy)."""

        def register(handler: Handler) -> Task:
            return self.add(
                Task(
                    handler,
                    name=name or handler.__name__,
                    queue=queue,
                    max_attempts=max_attempts,
                    retry=retry,
                    timeout=timeout,
                    priority=priority,
                )
            )

        return register if fn is None else register(fn)

    def periodic(
        self,
        cron: str,
        *,
        timezone: str = "UTC",
        catch_up: CatchUp | str = CatchUp.LATEST,
        payload: Any = None,
        **task_options: Any,
    ) -> Callable[[Handler], Task]:
        """Register a task that the leader enqueues on a cron schedule, exactly once per slot:
        `@registry.periodic("*/5 * * * *", timezone="Europe/Paris")`. Task options as for `task`."""

        def register(handler: Handler) -> Task:
            registered = self.task(handler, **task_options)
            registered.encode(payload)  # a bad payload fails at import, not at every slot
            self.schedules[registered.name] = Schedule(
                task=registered.name,
                cron=cron,
                timezone=timezone,
                catch_up=CatchUp(catch_up),
                payload=payload,
            )
            return registered

        return register


registry = Registry()
task = registry.task
periodic = registry.periodic


# -- building jobs for enqueue ---------------------------------------------------------------


def encode_payload(task_name: str, value: Any) -> str:
    """JSON text of a payload for a task this process does not know (or after validation)."""
    try:
        data = msgspec.json.encode(value)
    except (TypeError, ValueError, RecursionError, OverflowError) as exc:
        raise PayloadError(task_name, f"cannot be encoded as JSON: {exc}") from None
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadError(task_name, f"is {len(data)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    return data.decode()


def build_job(
    task: Task | str,
    payload: Any,
    *,
    registry: Registry = registry,
    queue: str | None = None,
    run_at: datetime | None = None,
    delay: float | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
) -> NewJob:
    """Validate everything about one job before it reaches SQL; shared by every enqueue path."""
    resolved = registry.get(task) if isinstance(task, str) else task
    task_name = names.task_name(task if isinstance(task, str) else task.name)
    if run_at is not None and delay is not None:
        raise NotifyqError("give run_at or delay, not both")
    if run_at is not None and run_at.tzinfo is None:
        raise NotifyqError("run_at must be timezone-aware")
    defaults = resolved or _UNKNOWN_TASK_DEFAULTS
    return NewJob(
        queue=names.queue_name(queue if queue is not None else defaults.queue),
        task=task_name,
        payload=resolved.encode(payload) if resolved else encode_payload(task_name, payload),
        priority=_smallint("priority", priority if priority is not None else defaults.priority),
        max_attempts=_positive_int(
            "max_attempts", max_attempts if max_attempts is not None else defaults.max_attempts
        ),
        run_at=run_at,
        delay=delay,
        idempotency_key=_idempotency_key(idempotency_key),
    )


class _Defaults(msgspec.Struct, frozen=True):
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


# a job for a task this process has not registered (a producer that only knows the name)
_UNKNOWN_TASK_DEFAULTS = _Defaults()


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One job for `enqueue_many`; None options take the task's defaults."""

    task: Task | str
    payload: Any = None
    queue: str | None = None
    run_at: datetime | None = None
    delay: float | None = None
    priority: int | None = None
    max_attempts: int | None = None
    idempotency_key: str | None = None


def iter_jobs(specs: Iterable[JobSpec], *, registry: Registry = registry) -> Iterator[NewJob]:
    """Build each job as it is asked for, but the first at once, so a bad first job fails before
    the caller takes a connection: a bulk COPY streams rows while later ones are built."""
    built = (
        build_job(
            s.task,
            s.payload,
            registry=registry,
            queue=s.queue,
            run_at=s.run_at,
            delay=s.delay,
            priority=s.priority,
            max_attempts=s.max_attempts,
            idempotency_key=s.idempotency_key,
        )
        for s in specs
    )
    first = next(built, None)
    return built if first is None else itertools.chain((first,), built)


def build_jobs(specs: Iterable[JobSpec], *, registry: Registry = registry) -> list[NewJob]:
    return list(iter_jobs(specs, registry=registry))


def _idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or "\x00" in key:
        raise NotifyqError(f"idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} characters without NUL")
    return key


def _positive_int(field: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise NotifyqError(f"{field} must be a positive integer, got {value!r}")
    return value


def _smallint(field: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not SMALLINT_MIN <= value <= SMALLINT_MAX:
        raise NotifyqError(f"{field} must be an integer in -32768..32767, got {value!r}")
    return value


def _signature(fn: Handler) -> tuple[str | None, Any, str | None]:
    """(payload parameter, payload type, context parameter) of a handler."""
    hints: Mapping[str, Any] = typing.get_type_hints(fn)
    payload: tuple[str | None, Any] = (None, None)
    context = None
    for param in inspect.signature(fn).parameters.values():
        if hints.get(param.name) is JobContext:
            context = param.name
        elif payload[0] is None:
            payload = (param.name, hints.get(param.name, Any))
    return payload[0], payload[1], context


_JSON_SCALARS = frozenset((str, int, float, bool, type(None)))


def _plain_json(value: Any) -> bool:
    """Whether `value` is JSON data as it is: dicts with str keys, lists, str, int, float, bool,
    None (exact types: no subclasses such as enums, no datetimes that would become strings)."""
    try:
        return _is_plain(value)
    except RecursionError:
        return False


def _is_plain(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _JSON_SCALARS and not _is_plain(item)):
                return False
        return True
    if kind is list:
        return all(type(item) in _JSON_SCALARS or _is_plain(item) for item in value)
    return kind in _JSON_SCALARS


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", repr(tp))
