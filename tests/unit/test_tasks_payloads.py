"""Task registration and payload typing: validated at enqueue, decoded in the worker (no database)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from notifyq import JobContext, JobSpec, Registry
from notifyq.client import assign_ids, missing_keys
from notifyq.errors import InvalidNameError, NotifyqError, PayloadError
from notifyq.models import NewJob
from notifyq.tasks import MAX_PAYLOAD_BYTES, build_job


class Email(msgspec.Struct):
    to: str
    subject: str = "hi"


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_payload_type_comes_from_the_first_parameter_and_context_is_injected() -> None:
    registry = Registry()

    @registry.task(queue="mail", max_attempts=3)
    async def send(email: Email, ctx: JobContext) -> None: ...

    assert (send.payload_type, send.payload_param, send.context_param) == (Email, "email", "ctx")
    ctx = JobContext(
        job_id=1, task="send", queue="mail", attempt=1, max_attempts=3, created_at=datetime.now(UTC)
    )
    assert send.arguments(Email(to="a"), lambda: ctx) == {"email": Email(to="a"), "ctx": ctx}


def test_struct_dataclass_and_dict_payloads_round_trip() -> None:
    registry = Registry()

    @registry.task
    def a(p: Email) -> None: ...

    @registry.task
    def b(p: Point) -> None: ...

    @registry.task
    def c(p: dict[str, int]) -> None: ...

    assert a.decode(a.encode({"to": "x"})) == Email(to="x")
    assert a.decode(a.encode(Email(to="y"))) == Email(to="y")
    assert b.decode(b.encode(Point(1, 2))) == Point(1, 2)
    assert c.decode(c.encode({"n": 1})) == {"n": 1}


def test_payload_not_matching_the_type_fails_at_enqueue_naming_the_task() -> None:
    registry = Registry()

    @registry.task
    def send(email: Email) -> None: ...

    with pytest.raises(PayloadError, match=r"'send'.*Email"):
        send.encode({"subject": "missing to"})
    with pytest.raises(PayloadError, match="does not match"):
        send.decode('{"to": 5}')


def test_untyped_payloads_must_be_json_and_within_the_size_limit() -> None:
    with pytest.raises(PayloadError, match="cannot be encoded as JSON"):
        build_job("t", {"x": object()})
    with pytest.raises(PayloadError, match="limit"):
        build_job("t", "x" * (MAX_PAYLOAD_BYTES + 1))
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(PayloadError, match="JSON"):
        build_job("t", deep)


def test_task_without_parameters_takes_no_payload() -> None:
    registry = Registry()

    @registry.task
    async def tick() -> None: ...

    assert tick.encode(None) == "null"
    with pytest.raises(PayloadError, match="takes no payload"):
        tick.encode({"x": 1})


def test_registering_another_function_under_a_taken_name_fails() -> None:
    registry = Registry()

    @registry.task(name="same")
    def one() -> None: ...

    with pytest.raises(NotifyqError, match="already registered"):

        @registry.task(name="same")
        def two() -> None: ...


def test_job_options_are_validated_before_sql() -> None:
    with pytest.raises(InvalidNameError):
        build_job("t", None, queue="q" * 41)
    with pytest.raises(NotifyqError, match="timezone-aware"):
        build_job("t", None, run_at=datetime(2030, 1, 1))
    with pytest.raises(NotifyqError, match="not both"):
        build_job("t", None, run_at=datetime.now(UTC), delay=1)
    with pytest.raises(NotifyqError, match="idempotency_key"):
        build_job("t", None, idempotency_key="k" * 256)
    with pytest.raises(NotifyqError, match="idempotency_key"):
        build_job("t", None, idempotency_key="nul\x00")
    with pytest.raises(NotifyqError, match="priority"):
        build_job("t", None, priority=40000)
    with pytest.raises(NotifyqError, match="max_attempts"):
        build_job("t", None, max_attempts=0)


def test_registered_task_defaults_apply_and_options_override_them() -> None:
    registry = Registry()

    @registry.task(queue="mail", priority=5, max_attempts=3)
    def send() -> None: ...

    job = build_job("send", None, registry=registry)
    assert (job.queue, job.priority, job.max_attempts) == ("mail", 5, 3)
    job = build_job(send, None, queue="other", priority=0, max_attempts=1)
    assert (job.queue, job.priority, job.max_attempts) == ("other", 0, 1)


def _job(key: str | None) -> NewJob:
    return NewJob(queue="q", task="t", payload="null", max_attempts=1, idempotency_key=key)


def test_bulk_ids_keep_input_order_with_taken_keys_filled_in() -> None:
    jobs = [_job(None), _job("a"), _job(None), _job("b")]
    inserted = [(10, None), (11, "a"), (12, None)]
    assert missing_keys(jobs, inserted) == ["b"]
    assert assign_ids(jobs, inserted, [(3, "b")]) == [10, 11, 12, 3]


def test_job_spec_builds_like_enqueue() -> None:
    spec = JobSpec(task="t", payload={"a": 1}, delay=2.0)
    job = build_job(spec.task, spec.payload, delay=spec.delay)
    assert (job.payload, job.delay) == ('{"a":1}', 2.0)


class Reading:
    """Not JSON by itself: msgspec reads it by its attributes (from_attributes)."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


@pytest.mark.parametrize(
    ("annotation", "payload"),
    [
        (Email, {"to": "x"}),
        (Email, Email(to="y", subject="s")),
        (Point, Point(1, 2)),
        (Point, {"x": 1, "y": 2}),
        (dict[str, float], {"n": 1, "m": 2.5}),
        (list[datetime], [datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)]),
        (Any, {"a": [1, "b", None]}),
    ],
)
def test_a_payload_is_stored_as_the_json_of_its_typed_value(annotation: Any, payload: Any) -> None:
    """Validation decodes the payload's JSON as the worker will; what is stored is the same JSON as
    converting the payload to the type and encoding that (defaults filled in, ints as floats)."""
    registry = Registry()

    def handler(p: Any) -> None: ...

    handler.__annotations__["p"] = annotation
    task = registry.task(handler)
    expected = msgspec.json.encode(msgspec.convert(payload, annotation, from_attributes=True)).decode()
    assert task.encode(payload) == expected


def test_an_object_read_by_its_attributes_is_still_a_valid_payload() -> None:
    registry = Registry()

    @registry.task
    def plot(p: Point) -> None: ...

    assert plot.decode(plot.encode(Reading(3, 4))) == Point(3, 4)
    with pytest.raises(PayloadError, match="does not match Point"):
        plot.encode(Reading("a", 4))  # type: ignore[arg-type]


class Order(msgspec.Struct):
    items: list[Item]  # defined below the task: resolved when the first payload comes


forward = Registry()


@forward.task
def order(p: Order) -> None: ...


class Item(msgspec.Struct):
    sku: str


def test_a_payload_type_may_name_a_class_defined_after_the_task() -> None:
    assert order.decode(order.encode({"items": [{"sku": "a"}]})) == Order(items=[Item(sku="a")])


@dataclasses.dataclass
class Counted:
    x: int

    def __post_init__(self) -> None:
        self.x += 1


@pytest.mark.parametrize(
    ("annotation", "payload"),
    [
        (dict[str, str], {"at": datetime(2030, 1, 1, tzinfo=UTC)}),  # not a str, though JSON would be
        (dict[str, int], {1: 2}),  # an int key, though JSON would make it "1"
        (list[str], [b"bytes"]),
    ],
)
def test_a_payload_is_checked_as_the_python_value_not_as_its_json(annotation: Any, payload: Any) -> None:
    registry = Registry()

    def handler(p: Any) -> None: ...

    handler.__annotations__["p"] = annotation
    task = registry.task(handler)
    with pytest.raises(PayloadError, match="does not match"):
        task.encode(payload)


def test_an_instance_of_the_payload_type_is_stored_as_it_is() -> None:
    registry = Registry()

    @registry.task
    def count(p: Counted) -> None: ...

    assert count.encode(Counted(1)) == '{"x":2}'  # __post_init__ ran once, when it was built


def test_a_typed_payload_nested_too_deeply_is_a_payload_error() -> None:
    registry = Registry()

    @registry.task
    def tree(p: list[Any]) -> None: ...

    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(PayloadError, match="'tree'"):
        tree.encode(deep)
