"""The operator's one HTTP server: `/metrics`, `/healthz`, `/readyz`, and the routes other parts register.

Several parts of the product answer HTTP (webhook receivers, the dashboard, the runtime's own endpoints), and each
would otherwise start its own server on its own port. This module owns the one server and a small registration API:

    server = OperatorHTTPServer(host="0.0.0.0", port=8080)
    server.add_route("POST", "/hooks/{source}", receiver.handle)   # one route
    server.install(receiver)                                        # or anything with install(app)
    server.health.add_readiness_check("git", lambda: None if fetched else "no fetch yet")

Routes are registered before `start()`; aiohttp freezes its router when it starts, so a late registration raises a
clear error instead of silently never answering. The built-in paths cannot be taken twice. The hazards of running it:
an open connection must not hold shutdown (a short `shutdown_timeout`, as for the simulator), request bodies are
capped, and port 0 asks the OS for a free port whose number `port` reports once started.

The server imports nothing of the runtime: it renders whatever `MetricsSource` it is given (the Operator gives it the
runtime's registry), so it can be tested and reused alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final, Protocol, Self

from aiohttp import web

from nomad_operator.server.health import HEALTHZ_PATH, READYZ_PATH, HealthChecks

logger = logging.getLogger(__name__)

DEFAULT_HOST: Final = "127.0.0.1"
"""Loopback unless told otherwise: the operator's job sets NOMAD_OPERATOR_LISTEN=0.0.0.0:8080 on purpose."""
DEFAULT_PORT: Final = 8080
DEFAULT_SHUTDOWN_TIMEOUT_SECONDS: Final = 1.0
"""How long open connections may delay shutdown; well inside Nomad's kill_timeout after SIGTERM."""
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
"""Request bodies above this are refused with 413 (webhook payloads are a few KiB)."""
METRICS_PATH: Final = "/metrics"
BUILTIN_PATHS: Final = frozenset({METRICS_PATH, HEALTHZ_PATH, READYZ_PATH})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MetricsSource(Protocol):
    """What `/metrics` renders: Prometheus text and its Content-Type (`RuntimeMetrics` satisfies it)."""

    def render(self) -> bytes: ...


class RouteInstaller(Protocol):
    """Anything that adds its own routes to the app (e.g. `WebhookReceiver.install`)."""

    def install(self, app: web.Application) -> None: ...


class ServerStateError(RuntimeError):
    """A route was registered after start, or the server was started twice."""


class OperatorHTTPServer:
    """One aiohttp server for the whole operator; register routes, then `start()` (or `async with`)."""

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT_SECONDS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        metrics_content_type: str = "text/plain; version=0.0.4; charset=utf-8",
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535 (0 picks a free one), got {port}")
        self.host = host
        self.health = HealthChecks()
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout
        self._metrics: MetricsSource | None = None
        self._metrics_content_type = metrics_content_type
        self._app = web.Application(client_max_size=max_body_bytes)
        self._app.router.add_get(METRICS_PATH, self._serve_metrics)
        self.health.install(self._app)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # --- registration -------------------------------------------------------------------------------------------------
    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Answer `method path` with `handler`. Must be called before `start()`; built-in paths are refused."""
        self._check_open(f"{method} {path}")
        if path in BUILTIN_PATHS:
            raise ValueError(f"{path} is served by the operator itself; choose another path")
        if not path.startswith("/"):
            raise ValueError(f"a route path must start with '/', got {path!r}")
        self._app.router.add_route(method.upper(), path, handler)

    def install(self, installer: RouteInstaller) -> None:
        """Let `installer` add its routes (before `start()`)."""
        self._check_open(repr(installer))
        installer.install(self._app)

    def set_metrics(self, source: MetricsSource, *, content_type: str | None = None) -> None:
        """What `/metrics` renders (may be set or replaced at any time)."""
        self._metrics = source
        if content_type is not None:
            self._metrics_content_type = content_type

    @property
    def app(self) -> web.Application:
        return self._app

    # --- running ------------------------------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._runner is not None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for); `ServerStateError` before `start()`."""
        if self._port is None:
            raise ServerStateError("the HTTP server has not been started")
        return self._port

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise ServerStateError("the HTTP server is already started")
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = _bound_port(runner, fallback=self._requested_port)
        logger.info("HTTP server listening on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        """Stop serving (idempotent); open connections get `shutdown_timeout` to finish."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- handlers -----------------------------------------------------------------------------------------------------
    async def _serve_metrics(self, request: web.Request) -> web.Response:
        if self._metrics is None:
            return web.Response(status=503, text="no metrics registered yet\n", content_type="text/plain")
        response = web.Response(body=self._metrics.render())
        response.headers["Content-Type"] = self._metrics_content_type
        return response

    def _check_open(self, what: str) -> None:
        if self._runner is not None or self._app.frozen:
            raise ServerStateError(f"cannot register {what}: the HTTP server has started; register routes before")


def _bound_port(runner: web.AppRunner, *, fallback: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
            return address[1]
    return fallback
