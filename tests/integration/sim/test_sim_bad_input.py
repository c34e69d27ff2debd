"""Bad input answered with Nomad's status codes and plain-text messages, and ACL enforcement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from nomad_operator.sim.server import start_simulator


async def _answer(http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any) -> tuple[int, str, str]:
    async with http.request(method, path, **kwargs) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "text"), [
    ("PUT", "/v1/jobs", {"data": b"{not json"}, 400, None),
    ("PUT", "/v1/jobs", {"data": b""}, 400, "Request body is empty"),
    ("PUT", "/v1/jobs", {"json": {"Nope": 1}}, 400, "Job must be specified"),
    ("PUT", "/v1/jobs", {"json": {"Job": {"Name": "x"}}}, 400, "Job ID hasn't been provided"),
    ("PUT", "/v1/job/a", {"json": {"Job": {"ID": "b"}}}, 400, "Job ID does not match name"),
    ("PATCH", "/v1/jobs", {}, 405, "Invalid method"),
    ("DELETE", "/v1/nodes", {}, 405, "Invalid method"),
    ("GET", "/v1/nothing/here", {}, 404, None),
    ("GET", "/v1/job/missing", {}, 404, "job not found"),
    ("GET", "/v1/jobs?index=abc", {}, 400, "Invalid index"),
    ("GET", "/v1/jobs?index=5&wait=forever", {}, 400, "Invalid wait time"),
    ("GET", "/v1/allocation/nope", {}, 404, "alloc not found"),
    ("GET", "/v1/evaluation/nope", {}, 404, "eval not found"),
    ("GET", "/v1/deployment/nope", {}, 404, "deployment not found"),
    ("GET", "/v1/job/x/submission?version=zz", {}, 400, "Unable to parse job submission version parameter"),
    ("POST", "/v1/jobs/parse", {"json": {"JobHCL": ""}}, 400, "Job spec is empty"),
    ("GET", "/v1/jobs?filter=Status%20~%20x", {}, 400, None),
    ("GET", "/v1/jobs?per_page=many", {}, 400, "Expect a number for `per_page` query string parameter"),
    ("POST", "/v1/node/unknown-node/drain", {"json": {"DrainSpec": None}}, 500, "node not found"),
    ("DELETE", "/v1/job/x?purge=maybe", {}, 500, None),
    ("POST", "/v1/sim/faults", {"json": {"status": 700, "path": "x"}}, 400, None),
    ("POST", "/v1/sim/faults", {"json": {"status": 500, "path": "("}}, 400, None),
    ("POST", "/v1/sim/node/nope/unplug", {}, 404, "node not found"),
])
async def test_bad_requests(http: aiohttp.ClientSession, method: str, path: str, kwargs: dict[str, Any], status: int,
                            text: str | None) -> None:
    got_status, content_type, body = await _answer(http, method, path, **kwargs)
    assert got_status == status, body
    assert content_type.startswith("text/plain")
    if text is not None:
        assert body == text
    else:
        assert body


async def test_enforce_index_conflicts_are_500_with_nomads_text(
    http: aiohttp.ClientSession, make_job: Callable[..., dict[str, Any]]
) -> None:
    job = make_job("web", count=1, distinct=False)
    async with http.put("/v1/jobs", json={"Job": job, "EnforceIndex": True, "JobModifyIndex": 0}) as response:
        assert response.status == 200
        registered = await response.json()
    status, _, text = await _answer(http, "PUT", "/v1/jobs", json={"Job": job, "EnforceIndex": True,
                                                                  "JobModifyIndex": 0})
    assert (status, text) == (500, "Enforcing job modify index 0: job already exists")
    stale = registered["JobModifyIndex"] - 1
    status, _, text = await _answer(http, "PUT", "/v1/jobs", json={"Job": job, "EnforceIndex": True,
                                                                  "JobModifyIndex": stale})
    assert status == 500
    assert text == (f"Enforcing job modify index {stale}: job exists with conflicting job modify index: "
                    f"{registered['JobModifyIndex']}")


async def test_invalid_job_is_500(http: aiohttp.ClientSession) -> None:
    status, _, text = await _answer(http, "PUT", "/v1/jobs", json={"Job": {"ID": "x", "Type": "weird",
                                                                           "TaskGroups": []}})
    assert status == 500
    assert "Invalid job type" in text


async def test_oversized_body_is_413(make_config: Callable[..., Any]) -> None:
    async with start_simulator(make_config(max_body_bytes=1024)) as sim, aiohttp.ClientSession(
        base_url=sim.address
    ) as http:
        status, content_type, text = await _answer(http, "PUT", "/v1/var/big", json={"Items": {"a": "x" * 4096}})
        assert status == 413
        assert content_type.startswith("text/plain")
        assert "1024" in text
        assert sim.cluster.store.variables == {}


async def test_acl_requires_the_management_token(make_config: Callable[..., Any]) -> None:
    async with start_simulator(make_config(acl=True)) as sim, aiohttp.ClientSession(base_url=sim.address) as http:
        token = sim.management_token
        assert token
        status, _, text = await _answer(http, "GET", "/v1/jobs")
        assert (status, text) == (403, "Permission denied")
        status, _, text = await _answer(http, "GET", "/v1/jobs", headers={"X-Nomad-Token": "wrong"})
        assert (status, text) == (403, "Permission denied")
        status, _, text = await _answer(http, "GET", "/v1/acl/token/self", headers={"X-Nomad-Token": "wrong"})
        assert (status, text) == (403, "ACL token not found")
        status, _, _ = await _answer(http, "GET", "/v1/jobs", headers={"X-Nomad-Token": token})
        assert status == 200
        status, _, body = await _answer(http, "GET", "/v1/acl/token/self", headers={"Authorization": f"Bearer {token}"})
        assert status == 200
        assert '"Type":"management"' in body.replace(" ", "")
        status, _, _ = await _answer(http, "GET", "/v1/status/leader")
        assert status == 200
        status, _, _ = await _answer(http, "POST", "/v1/sim/node/pi1/unplug")
        assert status == 403
