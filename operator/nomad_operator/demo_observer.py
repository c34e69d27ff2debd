"""Reads the simulated cluster and the operator replicas over HTTP, the way any outside client would.

The demo builds only on the stable contracts: Nomad's HTTP API (served by the simulator) and the operator's HTTP
endpoints (`/status`, `/metrics`, `/healthz`). Hazards: a poll that costs the small machine more than the cluster
itself (five list calls a round, and a full job read only when its ModifyIndex moved), one slow or dead endpoint
stalling the display (every call has a timeout, and an unreachable replica is shown as such, not raised), and a
simulator that stops answering (raised as ClusterUnreachable: the caller waits during start-up, reports it later).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from nomad_operator.demo_defaults import HTTP_READ_BUFSIZE, HTTP_TIMEOUT_SECONDS, NODE_STATUS_VARIABLE
from nomad_operator.demo_view import DemoSnapshot, ReplicaReading, build_snapshot

LEADER_METRIC = "nomad_operator_is_leader"


class ClusterUnreachable(Exception):
    """The simulator did not answer (or answered an error) on one of the list calls."""


def leader_from_metrics(text: str) -> bool | None:
    """Whether the Prometheus text says this replica holds the leader lock; None when it does not say."""
    for line in text.splitlines():
        if line.startswith((LEADER_METRIC + " ", LEADER_METRIC + "{")):
            try:
                return float(line.rsplit(" ", 1)[1]) >= 1.0
            except (IndexError, ValueError):
                return None
    return None


class DemoObserver:
    """One aiohttp session for every read; `snapshot()` is one polling round."""

    def __init__(self, *, nomad_addr: str, replicas: Sequence[tuple[str, str]]) -> None:
        self.nomad_addr = nomad_addr.rstrip("/")
        self.replicas = list(replicas)  # (name, base URL)
        self._jobs: dict[str, tuple[int, dict[str, Any]]] = {}  # ID -> (ModifyIndex, full job)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> DemoObserver:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS),
                                              read_bufsize=HTTP_READ_BUFSIZE)  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("DemoObserver is used outside `async with`")
        return self._session

    async def _nomad(self, path: str) -> Any:
        try:
            async with self.session.get(self.nomad_addr + path) as answer:
                if answer.status == 404 and path.startswith("/v1/var/"):
                    return None
                if answer.status != 200:
                    raise ClusterUnreachable(f"GET {path}: {answer.status} {(await answer.text())[:200]}")
                return await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise ClusterUnreachable(f"GET {path}: {error or type(error).__name__}") from None

    async def nodes(self) -> list[dict[str, Any]]:
        answer = await self._nomad("/v1/nodes")
        return answer if isinstance(answer, list) else []

    async def _jobs_by_id(self) -> dict[str, dict[str, Any]]:
        stubs = await self._nomad("/v1/jobs")
        current: dict[str, dict[str, Any]] = {}
        for stub in stubs if isinstance(stubs, list) else []:
            job_id, index = str(stub.get("ID")), int(stub.get("ModifyIndex") or 0)
            cached = self._jobs.get(job_id)
            if cached is None or cached[0] != index:
                full = await self._nomad(f"/v1/job/{job_id}")
                if not isinstance(full, dict):
                    continue
                cached = (index, full)
            current[job_id] = cached[1]
            self._jobs[job_id] = cached
        for gone in set(self._jobs) - set(current):
            del self._jobs[gone]
        return current

    async def _node_status(self) -> dict[str, Any] | None:
        variable = await self._nomad(f"/v1/var/{NODE_STATUS_VARIABLE}")
        if not isinstance(variable, dict):
            return None
        try:
            document = json.loads((variable.get("Items") or {}).get("status") or "null")
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    async def _replica(self, name: str, base: str) -> ReplicaReading:
        status: dict[str, Any] | None = None
        leader: bool | None = None
        try:
            async with self.session.get(base + "/status") as answer:
                if answer.status == 200:
                    body = await answer.json(content_type=None)
                    status = body if isinstance(body, dict) else None
            async with self.session.get(base + "/metrics") as answer:
                if answer.status == 200:
                    leader = leader_from_metrics(await answer.text())
        except (aiohttp.ClientError, TimeoutError, ValueError):
            pass
        return ReplicaReading(name=name, address=base, status=status, leader=leader)

    async def snapshot(self) -> DemoSnapshot:
        nodes, jobs, allocations, evaluations, deployments, node_status = await asyncio.gather(
            self.nodes(), self._jobs_by_id(), self._nomad("/v1/allocations"), self._nomad("/v1/evaluations"),
            self._nomad("/v1/deployments"), self._node_status(),
        )  # fmt: skip
        readings = await asyncio.gather(*(self._replica(name, base) for name, base in self.replicas))
        return build_snapshot(nodes=nodes, jobs=jobs, allocations=allocations or [], evaluations=evaluations or [],
                              deployments=deployments or [], replicas=readings, node_status=node_status)  # fmt: skip

    async def healthy(self, base: str) -> bool:
        try:
            async with self.session.get(base + "/healthz") as answer:
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False
