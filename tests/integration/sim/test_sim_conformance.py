"""Conformance: the simulator's responses and events carry the keys and JSON types of real Nomad samples
(`conformance_dir / "api-samples"` and `/ "events"`), compared recursively."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from nomad_operator.sim.server import RunningSimulator

Poll = Callable[..., Awaitable[Any]]

# Maps whose keys are data (names, IDs), not schema: only their values' shapes are compared, one to one when a key
# matches and otherwise not at all.
DATA_MAPS = frozenset({
    "Meta", "Attributes", "Links", "TaskStates", "Summary", "Items", "Config", "Env", "QueuedAllocations",
    "FailedTGAllocs", "NodesAvailable", "ConstraintFiltered", "ClassFiltered", "DimensionExhausted", "Scores",
    "TaskResources", "Tasks", "DesiredTGUpdates", "Details", "Drivers", "TaskGroups", "HostVolumes",
    "HostNetworks", "CSIControllerPlugins", "CSINodePlugins", "TaskLifecycles", "ClassEligibility",
})
# Keys that are in a doc sample but not in the server struct of Nomad 2.0.6 (the docs lag or lead the code), or that
# only a feature the simulator does not model fills in.
NOT_IN_SERVER_STRUCT = frozenset({"Services", "Multiregion", "PlacedCanaries", "PreviousAllocation"})
# Lists of all-omitempty objects (NetworkResource, Port, AllocatedPortMapping): their empty keys are left out.
OMITEMPTY_LISTS = frozenset({"Networks", "ReservedPorts", "DynamicPorts", "Ports"})


SIMULATED_TOPICS = frozenset({"Deployment", "Evaluation", "Allocation", "Job", "Node", "Service"})


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def mismatches(sample: Any, ours: Any, path: str = "$", *, require_keys: bool = True) -> list[str]:
    """Differences in keys (sample keys missing from ours) and JSON types, recursively; null matches anything."""
    if sample is None or ours is None:
        return []
    if _kind(sample) != _kind(ours):
        return [f"{path}: sample {_kind(sample)} vs ours {_kind(ours)}"]
    problems: list[str] = []
    if isinstance(sample, dict):
        data_map = path.rsplit(".", 1)[-1] in DATA_MAPS
        for key, value in sample.items():
            if key in ours:
                problems += mismatches(value, ours[key], f"{path}.{key}", require_keys=require_keys)
            elif require_keys and not data_map and key not in NOT_IN_SERVER_STRUCT:
                problems.append(f"{path}.{key}: missing")
    elif isinstance(sample, list) and sample and ours:
        omitempty = path.rsplit(".", 1)[-1] in OMITEMPTY_LISTS
        problems += mismatches(sample[0], ours[0], f"{path}[0]", require_keys=require_keys and not omitempty)
    return problems


def load(directory: Path, name: str) -> Any:
    text = (directory / name).read_text()
    if name.endswith(".txt"):
        # The doc blocks miss a comma between two members: add one where a value ends a line and a key begins the next.
        text = re.sub(r'([}\]"\deln])\n(\s*)"', r'\1,\n\2"', text)
    return json.loads(text)


async def _get(http: aiohttp.ClientSession, path: str) -> Any:
    async with http.get(path) as response:
        assert response.status == 200, await response.text()
        return await response.json()


@pytest.fixture
async def populated(sim: RunningSimulator, http: aiohttp.ClientSession, poll: Poll,
                    make_job: Callable[..., dict[str, Any]]) -> RunningSimulator:
    async with http.put("/v1/jobs", json={"Job": make_job("web", count=2, distinct=False)}) as response:
        assert response.status == 200

    async def settled() -> bool:
        deployment = await _get(http, "/v1/job/web/deployment")
        return bool(deployment and deployment["Status"] == "successful")

    await poll(settled, what="a successful deployment")
    async with http.put("/v1/var/app/status", json={"Items": {"phase": "ready"}}) as response:
        assert response.status == 200
    return sim


@pytest.mark.parametrize(("sample", "route", "strict"), [
    ("jobs-read-job-sample-response.json", "/v1/job/web", True),
    ("jobs-list-jobs-sample-response.json", "/v1/jobs", True),
    ("jobs-read-job-summary-sample-response.json", "/v1/job/web/summary", True),
    ("jobs-list-job-allocations-sample-response.json", "/v1/job/web/allocations", True),
    ("allocations-list-allocations-sample-response.json", "/v1/allocations", True),
    ("allocations-read-allocation-sample-response.json", "/v1/allocation/{alloc}", False),
    ("nodes-list-nodes-sample-response.json", "/v1/nodes?os=true", True),
    ("nodes-read-node-sample-response.txt", "/v1/node/{node}", True),
    ("nodes-list-node-allocations-sample-response.json", "/v1/node/{node}/allocations", False),
    ("evaluations-read-evaluation-sample-response.json", "/v1/evaluation/{eval}", False),
    ("evaluations-list-evaluations-sample-response.json", "/v1/evaluations", False),
    ("deployments-read-deployment-sample-response.json", "/v1/deployment/{deployment}", True),
    ("deployments-list-deployments-sample-response.json", "/v1/deployments", True),
    ("jobs-read-job-s-most-recent-deployment-sample-response.json", "/v1/job/web/deployment", True),
    ("variables-variables-list-variables-sample-response.json", "/v1/vars", True),
    ("variables-variables-read-variable-sample-response.txt", "/v1/var/app/status", True),
    ("jobs-read-job-scale-status-sample-response.json", "/v1/job/web/scale", True),
])
async def test_response_shapes_match_samples(conformance_dir: Path, populated: RunningSimulator,
                                             http: aiohttp.ClientSession, sample: str, route: str,
                                             strict: bool) -> None:
    """`strict`: every sample key must be present (objects that always carry all keys); otherwise (all-omitempty
    objects such as Allocation and Evaluation) only the types of shared keys are compared."""
    store = populated.cluster.store
    alloc = next(a for a in store.allocs.values() if a["ClientStatus"] == "running")
    ids = {"alloc": alloc["ID"], "node": alloc["NodeID"], "eval": alloc["EvalID"],
           "deployment": next(iter(store.deployments))}
    ours = await _get(http, route.format(**ids))
    expected = load(conformance_dir / "api-samples", sample)
    assert mismatches(expected, ours, require_keys=strict) == []


async def test_allocation_keeps_set_keys_and_drops_empty_ones(populated: RunningSimulator,
                                                              http: aiohttp.ClientSession) -> None:
    alloc_id = next(a["ID"] for a in populated.cluster.store.allocs.values() if a["ClientStatus"] == "running")
    ours = await _get(http, f"/v1/allocation/{alloc_id}")
    for key in ("ID", "Namespace", "EvalID", "Name", "NodeID", "NodeName", "JobID", "Job", "TaskGroup",
                "AllocatedResources", "DesiredStatus", "ClientStatus", "ClientDescription", "TaskStates",
                "CreateIndex", "ModifyIndex", "CreateTime", "ModifyTime", "DeploymentID", "DeploymentStatus"):
        assert key in ours, key
    assert all(value not in ("", 0, False, None, [], {}) for value in ours.values())
    assert list(ours) == sorted(ours)


async def test_event_shapes_match_samples(conformance_dir: Path, populated: RunningSimulator,
                                          http: aiohttp.ClientSession) -> None:
    async with http.get("/v1/event/stream", params={"index": "1"}) as response:
        events: list[dict[str, Any]] = []

        async def read() -> None:
            while not {"NodeRegistration", "PlanResult"} <= {e["Type"] for e in events} or not (
                    {e["Topic"] for e in events} >= SIMULATED_TOPICS):
                line = orjson.loads(await response.content.readline())
                events.extend(line.get("Events", []))

        await asyncio.wait_for(read(), 10)
    registration = load(conformance_dir / "events", "docs-node-registration.json")
    ours_registration = next(e for e in events if e["Type"] == "NodeRegistration")
    assert mismatches(registration["Events"][0], ours_registration) == []
    capture = load(conformance_dir / "events", "deployment-planresult-capture.json")
    capture = {key: value for key, value in capture.items() if key not in ("path", "source_type", "timestamp")}
    ours_deployment = next(e for e in events if e["Topic"] == "Deployment")
    assert mismatches(capture, ours_deployment) == []
    for shape in load(conformance_dir / "events", "api-test-payload-shapes.json"):
        if shape["Topic"] not in SIMULATED_TOPICS:
            continue  # NodePool: the simulator has only the default pool and emits no pool events
        ours_event = next(e for e in events if e["Topic"] == shape["Topic"])
        assert mismatches(shape["Payload"], ours_event["Payload"], require_keys=False) == []
        assert set(shape["Payload"]) - {"Deleted"} <= set(ours_event["Payload"])
