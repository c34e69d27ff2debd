"""The one error type the simulator's logic raises: an HTTP status with Nomad's plain-text message.

Nomad's clients (ours included) branch on the status code and sometimes on the text ("Enforcing job modify index",
"Permission denied"), and an uncoded server error is a 500 whatever it means. Raising `ApiError` with the exact
status and text from the logic layer keeps those decisions next to the rule that makes them, and the HTTP layer only
writes them out.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer: `status` and a plain-text `message`, or a JSON `body` (409 conflicts carry the object)."""

    def __init__(self, status: int, message: str, *, body: Any = None, index: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body
        self.index = index


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def server_error(message: str) -> ApiError:
    """Uncoded errors: Nomad answers 500 for validation failures and index conflicts alike."""
    return ApiError(500, message)
