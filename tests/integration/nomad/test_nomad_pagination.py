"""The client's paged lists: what it sends for each page, how it follows `X-Nomad-NextToken`, and what it refuses.

Against the fake Nomad for the exact requests and the broken answers, and against the simulator (Nomad's orders and
tokens) for whole lists read page by page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from nomad_fake_server import FakeNomad, respond

from nomad_operator.nomad import InvalidResponse, NomadClient, QueryResult, ServerError
from nomad_operator.nomad.defaults import DEFAULT_LIST_PAGE_SIZE
from nomad_operator.sim.server import RunningSimulator
from nomad_operator.testing import wait_for_allocs

pytest_plugins = ["nomad_operator.testing.fixtures"]


def _meta(index: int, token: str = "") -> dict[str, str]:
    headers = {"X-Nomad-Index": str(index), "X-Nomad-KnownLeader": "true", "X-Nomad-LastContact": "0"}
    if token:
        headers["X-Nomad-NextToken"] = token
    return headers


def _paged_route(fake: FakeNomad, path: str, pages: dict[str, tuple[list[dict[str, Any]], str, int]]) -> None:
    """Answer `path` from `pages`, keyed by the `next_token` asked for ("" for the first page)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        items, token, index = pages[request.query.get("next_token", "")]
        return respond(200, items, _meta(index, token))

    fake.on("GET", path, handler)


async def _collect(pages: AsyncIterator[QueryResult[list[dict[str, Any]]]]) -> list[QueryResult[list[dict[str, Any]]]]:
    return [page async for page in pages]


async def test_pages_follow_the_next_token_and_keep_each_pages_index(
    fake_nomad: FakeNomad, client: NomadClient
) -> None:
    _paged_route(fake_nomad, "/v1/allocations", {
        "": ([{"ID": "a"}, {"ID": "b"}], "7.c", 40),
        "7.c": ([{"ID": "c"}, {"ID": "d"}], "9.e", 41),
        "9.e": ([{"ID": "e"}], "", 43),
    })  # fmt: skip

    pages = await _collect(client.allocation_pages(per_page=2))

    assert [[item["ID"] for item in page.value] for page in pages] == [["a", "b"], ["c", "d"], ["e"]]
    assert [page.index for page in pages] == [40, 41, 43]
    assert [page.next_token for page in pages] == ["7.c", "9.e", ""]
    sent = fake_nomad.sent("GET", "/v1/allocations")
    assert [dict(request.query) for request in sent] == [
        {"per_page": "2", "namespace": "apps", "region": "eu"},
        {"per_page": "2", "next_token": "7.c", "namespace": "apps", "region": "eu"},
        {"per_page": "2", "next_token": "9.e", "namespace": "apps", "region": "eu"},
    ]


async def test_every_kind_has_pages_with_its_own_path_and_parameters(
    fake_nomad: FakeNomad, client: NomadClient
) -> None:
    for path in ("/v1/jobs", "/v1/nodes", "/v1/evaluations", "/v1/deployments"):
        fake_nomad.reply("GET", path, (200, [{"ID": "x"}], _meta(5)))

    await _collect(client.job_pages(prefix="we", filter='Status == "running"', namespace="*"))
    await _collect(client.node_pages())
    await _collect(client.evaluation_pages(per_page=7))
    await _collect(client.deployment_pages(region="us"))

    (jobs,) = fake_nomad.sent("GET", "/v1/jobs")
    assert dict(jobs.query) == {
        "prefix": "we", "per_page": str(DEFAULT_LIST_PAGE_SIZE), "filter": 'Status == "running"', "namespace": "*",
        "region": "eu",
    }  # fmt: skip
    (nodes,) = fake_nomad.sent("GET", "/v1/nodes")
    assert "namespace" not in nodes.query  # nodes are not namespaced
    (evaluations,) = fake_nomad.sent("GET", "/v1/evaluations")
    assert evaluations.query["per_page"] == "7"
    (deployments,) = fake_nomad.sent("GET", "/v1/deployments")
    assert deployments.query["region"] == "us"


async def test_a_single_list_call_can_ask_for_one_page(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/jobs", (200, [{"ID": "a"}], _meta(9, "default.b")), (200, [{"ID": "b"}], _meta(9)))

    first = await client.list_jobs(per_page=1)
    second = await client.list_jobs(per_page=1, next_token=first.next_token)

    assert (first.next_token, second.next_token) == ("default.b", "")
    assert [request.query.get("next_token") for request in fake_nomad.sent("GET", "/v1/jobs")] == [None, "default.b"]


async def test_a_token_that_does_not_advance_is_refused_instead_of_paging_forever(
    fake_nomad: FakeNomad, client: NomadClient
) -> None:
    _paged_route(fake_nomad, "/v1/jobs", {"": ([{"ID": "a"}], "default.b", 3), "default.b": ([], "default.b", 3)})

    pages = client.job_pages(per_page=1)
    first = await anext(pages)
    second = await anext(pages)  # the pages before the broken answer are handed over
    with pytest.raises(InvalidResponse, match="did not advance"):
        await anext(pages)

    assert [first.value, second.value] == [[{"ID": "a"}], []]
    assert len(fake_nomad.sent("GET", "/v1/jobs")) == 2


async def test_a_page_that_is_not_a_list_is_refused(fake_nomad: FakeNomad, client: NomadClient) -> None:
    fake_nomad.reply("GET", "/v1/nodes", (200, {"ID": "not-a-list"}, _meta(3)))

    with pytest.raises(InvalidResponse, match="expected a JSON array"):
        await _collect(client.node_pages())


async def test_a_failed_page_raises_the_clients_error(fake_nomad: FakeNomad, client: NomadClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.query.get("next_token"):
            return respond(500, "rpc error: no cluster leader")
        return respond(200, [{"ID": "a"}], _meta(3, "default.b"))

    fake_nomad.on("GET", "/v1/jobs", handler)

    with pytest.raises(ServerError, match="no cluster leader"):
        await _collect(client.job_pages(per_page=1))


@pytest.mark.parametrize("per_page", [0, -3, 2.5, True])
async def test_a_page_size_below_one_is_a_clear_error(client: NomadClient, per_page: Any) -> None:
    with pytest.raises(ValueError, match="per_page must be an integer >= 1"):
        await _collect(client.evaluation_pages(per_page=per_page))


async def test_whole_lists_read_page_by_page_from_the_simulator(
    nomad_sim: RunningSimulator, nomad_client: NomadClient
) -> None:
    for job_id in ("web", "api", "db"):
        await nomad_client.register_job({
            "ID": job_id, "Name": job_id, "Type": "service", "Datacenters": ["dc1"],
            "TaskGroups": [{"Name": "g", "Count": 2, "Tasks": [{
                "Name": "t", "Driver": "docker", "Config": {"image": "x"}, "Resources": {"CPU": 10, "MemoryMB": 10}}]}],
        })  # fmt: skip
        await wait_for_allocs(nomad_client, job_id, count=2)
    await nomad_sim.cluster.wait_idle()

    for whole_list, pages in (
        (nomad_client.list_jobs(namespace="*"), nomad_client.job_pages(namespace="*", per_page=2)),
        (nomad_client.list_allocations(namespace="*"), nomad_client.allocation_pages(namespace="*", per_page=4)),
        (nomad_client.list_nodes(), nomad_client.node_pages(per_page=2)),
        (nomad_client.list_evaluations(namespace="*"), nomad_client.evaluation_pages(namespace="*", per_page=2)),
        (nomad_client.list_deployments(namespace="*"), nomad_client.deployment_pages(namespace="*", per_page=2)),
    ):
        whole = await whole_list
        paged = await _collect(pages)
        assert len(paged) > 1
        assert sorted(item["ID"] for page in paged for item in page.value) == sorted(item["ID"] for item in whole.value)
        assert all(page.index > 0 for page in paged)
