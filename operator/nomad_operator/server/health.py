"""`/healthz` and `/readyz`: whether to restart this replica, and whether to send it traffic.

The two questions have different answers and mixing them is the classic hazard: a replica whose caches are not synced
yet (Nomad unreachable at start, a big first list) must not be restarted for it, or it never gets to sync; it must
only be kept out of rotation. So `/healthz` answers 200 while the process serves HTTP at all (plus any liveness checks
registered, which should be rare), and `/readyz` answers 503 with every failing check's reason until all readiness
checks pass. A standby replica with synced caches is ready: it takes webhooks and is a warm spare.

Checks are plain callables returning None (fine) or a reason; a check that raises counts as failing, with the error
as its reason, so a bug in a check cannot turn into a 500 or an endless "ready".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final, Protocol

from aiohttp import web

logger = logging.getLogger(__name__)

HEALTHZ_PATH: Final = "/healthz"
READYZ_PATH: Final = "/readyz"


class HealthCheck(Protocol):
    """Returns None when healthy (or ready), otherwise a short reason that the endpoint shows."""

    def __call__(self) -> str | None: ...


@dataclass
class HealthChecks:
    """Named liveness and readiness checks, evaluated on each request."""

    liveness: dict[str, HealthCheck] = field(default_factory=dict)
    readiness: dict[str, HealthCheck] = field(default_factory=dict)

    def add_liveness_check(self, name: str, check: HealthCheck) -> None:
        _add(self.liveness, name, check, what="liveness")

    def add_readiness_check(self, name: str, check: HealthCheck) -> None:
        _add(self.readiness, name, check, what="readiness")

    def failing_liveness(self) -> dict[str, str]:
        return _failing(self.liveness)

    def failing_readiness(self) -> dict[str, str]:
        return _failing(self.readiness)

    async def healthz(self, request: web.Request) -> web.Response:
        return _answer(self.failing_liveness(), ok="ok", failing="unhealthy")

    async def readyz(self, request: web.Request) -> web.Response:
        return _answer(self.failing_readiness(), ok="ready", failing="not ready")

    def install(self, app: web.Application) -> None:
        app.router.add_get(HEALTHZ_PATH, self.healthz)
        app.router.add_get(READYZ_PATH, self.readyz)


def _add(checks: dict[str, HealthCheck], name: str, check: HealthCheck, *, what: str) -> None:
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"a {what} check needs a name of letters, digits, '-' and '_', got {name!r}")
    if name in checks:
        raise ValueError(f"a {what} check named {name!r} is already registered")
    if not callable(check):
        raise TypeError(f"{what} check {name!r} must be callable, got {check!r}")
    checks[name] = check


def _failing(checks: dict[str, HealthCheck]) -> dict[str, str]:
    failing: dict[str, str] = {}
    for name, check in checks.items():
        try:
            reason = check()
        except Exception as error:  # a broken check is a failing check, never a 500
            logger.exception("health check %s raised", name)
            reason = f"check raised {type(error).__name__}: {error}"
        if reason is not None:
            failing[name] = reason
    return failing


def _answer(failures: dict[str, str], *, ok: str, failing: str) -> web.Response:
    """Plain text, one line per failing check, as `curl` and Nomad's http check show it."""
    if not failures:
        return web.Response(text=f"{ok}\n", content_type="text/plain")
    lines = [f"{failing}:", *(f"- {name}: {reason}" for name, reason in sorted(failures.items()))]
    return web.Response(status=503, text="\n".join(lines) + "\n", content_type="text/plain")
