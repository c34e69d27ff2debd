"""What the client returns: a read's value with its index, and the few write answers worth a type.

A read without its `X-Nomad-Index` is half an answer: list-then-watch needs the index to start the event stream, a
blocking query needs it to ask "what changed since", and a compare-and-swap needs it to write safely. So every read
returns a `QueryResult` that carries the value and the index together. Job and variable bodies stay Nomad's
PascalCase wire JSON (plain dicts) because the reconcilers compare them field by field with what Nomad holds; only the
small, fixed write answers get dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nomad_operator.nomad.errors import InvalidResponse

T = TypeVar("T")

JSONObject = dict[str, Any]


def expect_object(body: Any, *, what: str) -> JSONObject:
    """`body` when it is a JSON object; otherwise `InvalidResponse` naming the call (`what`)."""
    if isinstance(body, dict):
        return body
    raise InvalidResponse(f"{what}: expected a JSON object, got {type(body).__name__}")


@dataclass(frozen=True, slots=True)
class QueryResult(Generic[T]):
    """A read answer: the decoded body and Nomad's query metadata (`X-Nomad-Index`, KnownLeader, LastContact).

    `next_token` is the `X-Nomad-NextToken` of a paged list: where the next page starts, "" on the last page (and on
    every answer that is not a cut page).
    """

    value: T
    index: int
    known_leader: bool
    last_contact_ms: int
    next_token: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobWriteResult:
    """The answer to a job register, deregister, evaluate or scale: the evaluation it created and the new index.

    `eval_id` is "" when no evaluation was created (periodic and parameterized jobs, deleting an unknown job).
    """

    eval_id: str
    eval_create_index: int
    job_modify_index: int
    warnings: str
    index: int

    @classmethod
    def from_wire(cls, body: JSONObject, *, header_index: int) -> JobWriteResult:
        return cls(
            eval_id=body.get("EvalID") or "",
            eval_create_index=int(body.get("EvalCreateIndex") or 0),
            job_modify_index=int(body.get("JobModifyIndex") or 0),
            warnings=body.get("Warnings") or "",
            index=int(body.get("Index") or header_index),
        )


@dataclass(frozen=True, slots=True)
class WriteAnswer:
    """A write's decoded body (None for an empty one, e.g. a variable delete's 204) and its `X-Nomad-Index`."""

    body: Any
    index: int
