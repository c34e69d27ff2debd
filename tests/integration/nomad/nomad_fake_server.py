"""A small programmable fake Nomad over real HTTP on 127.0.0.1, for the client tests (fixtures in conftest.py).

It records every request (method, path, query, headers, body) and answers from handlers the test installs per route,
so a test can state exactly what Nomad says and check exactly what the client sent. The real simulator replaces it in
the contract tests; this one exists so the client's own behaviour (headers, retries, errors) can be pinned down alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiDict

from nomad_operator.nomad import RetryPolicy

TOKEN = "s3cr3t-token-5b1c9e"
FAST_RETRY = RetryPolicy(max_attempts=4, max_total_seconds=5.0, initial_delay=0.001, max_delay=0.01, jitter=0.001)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    method: str
    path: str
    raw_path: str
    query: MultiDict[str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class FakeNomad:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)

    def on(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def reply(self, method: str, path: str, *responses: tuple[int, Any] | tuple[int, Any, dict[str, str]]) -> None:
        """Answer the route with these (status, body[, headers]) in turn, repeating the last one."""
        queue = list(responses)

        async def handler(request: web.Request) -> web.StreamResponse:
            status, body, *rest = queue.pop(0) if len(queue) > 1 else queue[0]
            headers = rest[0] if rest else {}
            return respond(status, body, headers)

        self.on(method, path, handler)

    def sent(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]


def respond(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    """Nomad's framing: JSON bodies for success and 409, plain text for other errors."""
    if isinstance(body, bytes):
        return web.Response(status=status, body=body, headers=headers)
    if isinstance(body, str) and status >= 400:
        return web.Response(status=status, text=body, headers=headers)
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)
