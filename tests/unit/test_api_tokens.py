"""The API's opaque strings: lease tokens and list cursors round-trip, and garbage decodes to None."""

from __future__ import annotations

import uuid

import pytest

from notifyq.api.schemas import decode_cursor, decode_token, encode_cursor, encode_token


def test_a_lease_token_round_trips_holder_and_attempt() -> None:
    holder = uuid.uuid4()
    assert decode_token(encode_token(holder, 3)) == (holder, 3)


def test_a_cursor_round_trips() -> None:
    assert decode_cursor(encode_cursor(1234)) == 1234


@pytest.mark.parametrize("text", ["", "!!", "not-a-token", "YTpi", encode_cursor(5)])
def test_garbage_tokens_decode_to_none(text: str) -> None:
    assert decode_token(text) is None


@pytest.mark.parametrize("text", ["", "!!", "eDox", encode_token(uuid.uuid4(), 1), "Yjow", "YjotMQ"])
def test_garbage_cursors_decode_to_none(text: str) -> None:
    assert decode_cursor(text) is None
