"""Injected API faults (errors at a rate, latency) and request accounting, for tests that break things on purpose.

The operator must survive a Nomad that answers 500s, answers slowly, or drops its event streams, and its tests must
prove that only the leader writes. Faults match by path regex and optional method and are drawn from a seeded RNG so
a failing test can be replayed; the accounting counts requests by method and route and logs every write with the
token that made it. Bad fault specs are rejected with a clear message instead of being half-applied.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from nomad_operator.sim.errors import bad_request

WRITE_METHODS = frozenset({"PUT", "POST", "DELETE"})
WRITE_LOG_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Fault:
    path: re.Pattern[str]
    method: str | None
    status: int | None  # an error answer
    rate: float
    latency_ms: float

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and self.path.search(path) is not None

    def describe(self) -> dict[str, Any]:
        return {"path": self.path.pattern, "method": self.method, "status": self.status, "rate": self.rate,
                "latency_ms": self.latency_ms}


def parse_fault(spec: Any) -> Fault:
    if not isinstance(spec, dict):
        raise bad_request("a fault must be a JSON object with status and rate, or latency_ms, and a path regex")
    try:
        pattern = re.compile(str(spec.get("path", ".*")))
    except re.error as error:
        raise bad_request(f"invalid fault path regex: {error}") from None
    method = spec.get("method")
    if method is not None and (not isinstance(method, str) or not method.isalpha()):
        raise bad_request("fault method must be an HTTP method such as GET or PUT")
    status = spec.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise bad_request("fault status must be an integer from 400 to 599")
    rate = spec.get("rate", 1.0)
    if not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise bad_request("fault rate must be a number from 0 to 1")
    latency = spec.get("latency_ms", 0)
    if not isinstance(latency, int | float) or latency < 0:
        raise bad_request("fault latency_ms must be a non-negative number")
    if status is None and not latency:
        raise bad_request("a fault needs a status (with a rate) or a latency_ms")
    return Fault(pattern, method.upper() if method else None, status, float(rate), float(latency))


class FaultInjector:
    def __init__(self, *, seed: int) -> None:
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)

    def add(self, spec: Any) -> Fault:
        fault = parse_fault(spec)
        self._faults.append(fault)
        return fault

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        return count

    def list(self) -> list[dict[str, Any]]:
        return [fault.describe() for fault in self._faults]

    def decide(self, method: str, path: str) -> tuple[float, int | None]:
        """(seconds to delay, status to fail with or None) for one request."""
        delay = 0.0
        status = None
        for fault in self._faults:
            if not fault.matches(method, path):
                continue
            delay += fault.latency_ms / 1000.0
            if status is None and fault.status is not None and self._rng.random() < fault.rate:
                status = fault.status
        return delay, status


class RequestStats:
    """Counts requests by method and route; logs writes with the token accessor that made them."""

    def __init__(self) -> None:
        self.by_route: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.write_log: deque[dict[str, Any]] = deque(maxlen=WRITE_LOG_LIMIT)
        self.total = 0

    def record(self, *, method: str, route: str, path: str, accessor: str, writer: str) -> None:
        self.total += 1
        key = f"{method} {route}"
        self.by_route[key] += 1
        if method in WRITE_METHODS and not path.startswith("/v1/sim/"):
            self.writes[key] += 1
            self.write_log.append({"time": time.time(), "method": method, "path": path, "accessor": accessor,
                                   "writer": writer})

    def reset(self) -> None:
        self.by_route.clear()
        self.writes.clear()
        self.write_log.clear()
        self.total = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "requests": dict(sorted(self.by_route.items())),
            "writes": dict(sorted(self.writes.items())),
            "write_count": sum(self.writes.values()),
            "write_log": list(self.write_log),
        }
