"""The one exception tree of the Nomad access layer, and the pure mapping from an HTTP answer to it.

Nomad answers errors in plain text and codes them loosely: a job validation failure and an `EnforceIndex` conflict are
both HTTP 500, a variable compare-and-swap conflict is 409 with the current variable as a JSON body. Callers must not
parse texts to tell "retry later" from "re-read and decide again" from "this will never work", so the mapping lives
here, once, and every caller catches a class:

    NomadError
    ├── ConfigurationError      bad settings or an unreadable token file; fix the configuration
    ├── NomadUnreachable        connection refused or reset, DNS, TLS, timeouts; nothing was answered
    ├── InvalidResponse         Nomad answered 2xx with a body we cannot use (not JSON, too large)
    ├── StreamProtocolError     the event stream sent a line that is not an event batch
    ├── WriteRefused            the write guard refused a write before it was sent
    │   └── NotLeader           ... because this replica does not hold the leader lock
    └── APIError(status, message, path)
        ├── BadRequest          400
        ├── PermissionDenied    403
        ├── NotFound            404
        ├── Conflict            409 on a variable (CAS or lock), or a register 500 "Enforcing job modify index"
        ├── TooManyRequests     429
        └── ServerError         any other 5xx

Messages are Nomad's own texts, cut to a sane length; they never contain the token (the client redacts it).
"""

from __future__ import annotations

from typing import Any

import orjson

from nomad_operator.nomad.defaults import MAX_ERROR_MESSAGE_CHARS

# Nomad reports these uncoded failures as 500, but asking again gives the same answer: not worth a retry.
_PERMANENT_SERVER_ERROR_MARKERS = (
    "validation failed",
    "error occurred:",
    "not found",
    "invalid scheduling eligibility",
    "can not set node's scheduling eligibility",
    "failed to parse",
)
# 501 Not Implemented and 505 HTTP Version Not Supported do not change by asking again.
_PERMANENT_SERVER_STATUSES = frozenset({501, 505})
_ENFORCE_INDEX_PREFIX = "Enforcing job modify index"


class NomadError(Exception):
    """Base of every error raised by `nomad_operator.nomad`."""


class ConfigurationError(NomadError):
    """The settings cannot work: a malformed address, a missing key file, an unreadable token file."""


class NomadUnreachable(NomadError):
    """No answer from Nomad: the connection failed, was cut, or timed out. Retrying later may help."""


class InvalidResponse(NomadError):
    """Nomad (or something in between) answered success with a body that is not the JSON we asked for."""


class StreamProtocolError(NomadError):
    """The event stream sent a line that is not a `{"Index":N,"Events":[...]}` batch nor a `{}` heartbeat."""


class WriteRefused(NomadError):
    """The write guard refused a write; nothing was sent to Nomad."""


class NotLeader(WriteRefused):
    """Refused because this replica is not the elected leader (only the leader writes)."""


class APIError(NomadError):
    """Nomad answered with an error status. `message` is its plain-text body, trimmed; `path` is the request path."""

    def __init__(self, status: int, message: str, path: str) -> None:
        super().__init__(f"{status} {message} ({path})")
        self.status = status
        self.message = message
        self.path = path


class BadRequest(APIError):
    """400: the request itself is wrong (bad JSON, bad parameters, HCL that does not parse)."""


class PermissionDenied(APIError):
    """403: the token lacks the capability, or is unknown."""


class NotFound(APIError):
    """404: the job, variable, allocation, node... does not exist."""


class Conflict(APIError):
    """The write lost a compare-and-swap: re-read and decide again, never overwrite.

    `current` is the variable that won, as Nomad sent it in the 409 body (metadata only without read permission),
    or None for a job register refused by `EnforceIndex` (which Nomad reports as a 500).
    """

    def __init__(self, status: int, message: str, path: str, *, current: dict[str, Any] | None = None) -> None:
        super().__init__(status, message, path)
        self.current = current


class TooManyRequests(APIError):
    """429: Nomad's rate limit; retry after a pause."""


class ServerError(APIError):
    """A 5xx other than an `EnforceIndex` conflict: a validation failure, no leader, an internal error."""

    @property
    def transient(self) -> bool:
        """Whether asking again may succeed (no cluster leader, RPC trouble) rather than fail the same way."""
        if self.status in _PERMANENT_SERVER_STATUSES:
            return False
        lowered = self.message.lower()
        return not any(marker in lowered for marker in _PERMANENT_SERVER_ERROR_MARKERS)


def trim_message(text: str, *, limit: int = MAX_ERROR_MESSAGE_CHARS) -> str:
    """Nomad's error text, stripped and cut to `limit` characters so a proxy's HTML page cannot flood a log."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def error_from_response(status: int, body: bytes, path: str) -> APIError:
    """The exception for an error answer of Nomad, from its status and (plain-text or JSON) body."""
    text = trim_message(body.decode("utf-8", errors="replace"))
    if status == 409:
        current = _json_object(body)
        if current is not None:
            modify_index = current.get("ModifyIndex")
            text = f"conflict: the variable has changed (current ModifyIndex {modify_index})"
        return Conflict(status, text or "conflict", path, current=current)
    if status >= 500 and text.startswith(_ENFORCE_INDEX_PREFIX):
        return Conflict(status, text, path)
    error_class = _CLASS_BY_STATUS.get(status)
    if error_class is None:
        error_class = ServerError if status >= 500 else APIError
    return error_class(status, text or f"HTTP {status}", path)


def is_transient(error: BaseException) -> bool:
    """Whether the same request may succeed if sent again later: the retry decision, independent of idempotency."""
    if isinstance(error, NomadUnreachable | TooManyRequests):
        return True
    if isinstance(error, ServerError):
        return error.transient
    return False


_CLASS_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    429: TooManyRequests,
}


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None
