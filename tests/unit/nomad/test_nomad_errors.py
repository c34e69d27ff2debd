"""The pure mapping of Nomad's error answers to the exception tree, and the retry decision on it."""

from __future__ import annotations

import orjson
import pytest

from nomad_operator.nomad.errors import (
    APIError,
    BadRequest,
    Conflict,
    NomadError,
    NomadUnreachable,
    NotFound,
    PermissionDenied,
    ServerError,
    TooManyRequests,
    error_from_response,
    is_transient,
    trim_message,
)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequest),
        (403, PermissionDenied),
        (404, NotFound),
        (409, Conflict),
        (429, TooManyRequests),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (405, APIError),
        (413, APIError),
    ],
)
def test_status_selects_the_class(status: int, error_class: type[APIError]) -> None:
    error = error_from_response(status, b"some text\n", "/v1/jobs")

    assert type(error) is error_class
    assert isinstance(error, NomadError)
    assert (error.status, error.message, error.path) == (status, "some text", "/v1/jobs")
    assert str(error) == f"{status} some text (/v1/jobs)"


def test_enforce_index_500_is_a_conflict_without_a_current_variable() -> None:
    text = b"Enforcing job modify index 0: job already exists"

    error = error_from_response(500, text, "/v1/jobs")

    assert isinstance(error, Conflict)
    assert error.current is None
    assert error.message == text.decode()


def test_another_500_mentioning_enforce_index_later_is_not_a_conflict() -> None:
    error = error_from_response(500, b"rpc error: Enforcing job modify index failed", "/v1/jobs")

    assert type(error) is ServerError


def test_variable_409_carries_the_current_variable() -> None:
    current = {"Namespace": "default", "Path": "a/b", "ModifyIndex": 12, "Items": {"k": "v"}}

    error = error_from_response(409, orjson.dumps(current), "/v1/var/a/b")

    assert isinstance(error, Conflict)
    assert error.current == current
    assert "ModifyIndex 12" in error.message


def test_409_with_text_keeps_the_text() -> None:
    error = error_from_response(409, b"variable doesn't hold a lock", "/v1/var/a/b")

    assert isinstance(error, Conflict)
    assert (error.current, error.message) == (None, "variable doesn't hold a lock")


def test_empty_body_still_gives_a_message() -> None:
    assert error_from_response(502, b"", "/v1/jobs").message == "HTTP 502"


def test_undecodable_bytes_do_not_break_the_mapping() -> None:
    error = error_from_response(500, b"\xff\xfe broken", "/v1/jobs")

    assert "broken" in error.message


def test_trim_message_cuts_long_texts() -> None:
    assert trim_message("  short  ") == "short"
    trimmed = trim_message("x" * 2000, limit=100)
    assert len(trimmed) == 100
    assert trimmed.endswith("…")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (NomadUnreachable("connection refused"), True),
        (TooManyRequests(429, "slow down", "/"), True),
        (ServerError(500, "rpc error: No cluster leader", "/"), True),
        (ServerError(502, "Bad Gateway", "/"), True),
        (ServerError(501, "jobs parse is not implemented", "/"), False),
        (ServerError(500, "1 error occurred:\n\t* Task group web validation failed", "/"), False),
        (ServerError(500, "node not found", "/"), False),
        (ServerError(500, 'invalid scheduling eligibility "x"', "/"), False),
        (Conflict(500, "Enforcing job modify index 3: ...", "/"), False),
        (NotFound(404, "job not found", "/"), False),
        (BadRequest(400, "bad", "/"), False),
        (ValueError("not ours"), False),
    ],
)
def test_is_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient
