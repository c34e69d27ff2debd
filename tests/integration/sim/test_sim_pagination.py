"""The simulator's list pagination over HTTP, as Nomad pages: `per_page`, `next_token`, `X-Nomad-NextToken`.

Each route's order and token are Nomad's: jobs by (Namespace, ID) with "ns.id" tokens, allocations, evaluations and
deployments by CreateIndex (a number) then ID with "index.id" tokens (by ID with a prefix), nodes by ID.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import aiohttp

from nomad_operator.sim.server import RunningSimulator

MakeJob = Callable[..., dict[str, Any]]
Page = tuple[list[dict[str, Any]], str, int]


async def _page(http: aiohttp.ClientSession, path: str, **params: str | int) -> Page:
    async with http.get(path, params={key: str(value) for key, value in params.items()}) as response:
        assert response.status == 200, await response.text()
        items: list[dict[str, Any]] = await response.json()
        return items, response.headers.get("X-Nomad-NextToken", ""), int(response.headers["X-Nomad-Index"])


async def _all_pages(http: aiohttp.ClientSession, path: str, **params: str | int) -> list[Page]:
    pages = [await _page(http, path, **params)]
    while pages[-1][1]:
        pages.append(await _page(http, path, **params, next_token=pages[-1][1]))
        assert len(pages) < 1000, "the token never ran out"
    return pages


async def _register(http: aiohttp.ClientSession, job: dict[str, Any], namespace: str = "default") -> None:
    async with http.put("/v1/jobs", params={"namespace": namespace}, json={"Job": job}) as response:
        assert response.status == 200, await response.text()


def _ci_token(item: dict[str, Any]) -> str:
    return f"{item['CreateIndex']}.{item['ID']}"


async def test_jobs_page_by_namespace_then_id_across_namespaces(http: aiohttp.ClientSession, make_job: MakeJob) -> None:
    for namespace, job_id in [("prod", "b"), ("default", "z"), ("prod", "a"), ("default", "c"), ("default", "a.b")]:
        await _register(http, make_job(job_id, count=1, distinct=False), namespace)

    pages = await _all_pages(http, "/v1/jobs", namespace="*", per_page=2)

    listed = [(item["Namespace"], item["ID"]) for items, _, _ in pages for item in items]
    assert listed == [("default", "a.b"), ("default", "c"), ("default", "z"), ("prod", "a"), ("prod", "b")]
    assert [len(items) for items, _, _ in pages] == [2, 2, 1]
    for (_, token, _), (next_items, _, _) in itertools.pairwise(pages):
        assert token == f"{next_items[0]['Namespace']}.{next_items[0]['ID']}"
    assert pages[-1][1] == ""


async def test_allocations_page_by_create_index_as_a_number(
    sim: RunningSimulator, http: aiohttp.ClientSession, make_job: MakeJob
) -> None:
    whole: list[dict[str, Any]] = []
    for number in range(60):  # until create indexes pass from two digits to three ("102" < "98" as text)
        await _register(http, make_job(f"job-{number:02d}", count=3, distinct=False))
        await sim.cluster.wait_idle()
        whole, _, _ = await _page(http, "/v1/allocations")
        if max(item["CreateIndex"] for item in whole) >= 100:
            break
    assert any(item["CreateIndex"] < 100 for item in whole)
    assert any(item["CreateIndex"] >= 100 for item in whole)

    pages = await _all_pages(http, "/v1/allocations", per_page=5)

    listed = [item for items, _, _ in pages for item in items]
    assert [item["ID"] for item in listed] == [
        item["ID"] for item in sorted(whole, key=lambda item: (item["CreateIndex"], item["ID"]))
    ]
    for (_, token, _), (next_items, _, _) in itertools.pairwise(pages):
        assert token == _ci_token(next_items[0])

    # A hand-made token in the middle starts the page at that object: the index is compared as a number.
    middle = next(position for position, item in enumerate(listed) if item["CreateIndex"] >= 100)
    items, token, _ = await _page(http, "/v1/allocations", per_page=3, next_token=_ci_token(listed[middle]))
    assert [item["ID"] for item in items] == [item["ID"] for item in listed[middle : middle + 3]]
    assert token == (_ci_token(listed[middle + 3]) if middle + 3 < len(listed) else "")


async def test_a_prefix_pages_allocations_by_id_with_id_tokens(http: aiohttp.ClientSession, make_job: MakeJob) -> None:
    await _register(http, make_job("web", count=9, distinct=False))
    whole, _, _ = await _page(http, "/v1/allocations")
    prefix = sorted(item["ID"] for item in whole)[0][:1]
    expected = sorted(item["ID"] for item in whole if item["ID"].startswith(prefix))

    pages = await _all_pages(http, "/v1/allocations", prefix=prefix, per_page=1)

    assert [item["ID"] for items, _, _ in pages for item in items] == expected
    assert [token for _, token, _ in pages] == [*expected[1:], ""]


async def test_reverse_walks_the_same_order_backwards(http: aiohttp.ClientSession, make_job: MakeJob) -> None:
    for job_id in ("a", "b", "c", "d", "e"):
        await _register(http, make_job(job_id, count=1, distinct=False))

    pages = await _all_pages(http, "/v1/jobs", per_page=2, reverse="true")

    assert [item["ID"] for items, _, _ in pages for item in items] == ["e", "d", "c", "b", "a"]
    assert [token for _, token, _ in pages] == ["default.c", "default.a", ""]


async def test_evaluations_deployments_and_nodes_page_in_nomads_orders(
    sim: RunningSimulator, http: aiohttp.ClientSession, make_job: MakeJob
) -> None:
    for job_id in ("a", "b", "c"):
        await _register(http, make_job(job_id, count=1, distinct=False))
    await sim.cluster.wait_idle()

    for path, key in (
        ("/v1/evaluations", lambda item: (item["CreateIndex"], item["ID"])),
        ("/v1/deployments", lambda item: (item["CreateIndex"], item["ID"])),
        ("/v1/nodes", lambda item: item["ID"]),
    ):
        whole, _, _ = await _page(http, path)
        assert len(whole) >= 3, path
        pages = await _all_pages(http, path, per_page=2)
        listed = [item["ID"] for items, _, _ in pages for item in items]
        assert listed == [item["ID"] for item in sorted(whole, key=key)], path


async def test_an_object_deleted_between_pages_does_not_stop_the_next_page(
    http: aiohttp.ClientSession, make_job: MakeJob
) -> None:
    for job_id in ("a", "b", "c", "d"):
        await _register(http, make_job(job_id, count=1, distinct=False))
    first, token, first_index = await _page(http, "/v1/jobs", per_page=2)
    assert token == "default.c"
    async with http.delete("/v1/job/c", params={"purge": "true"}) as response:
        assert response.status == 200

    second, last_token, second_index = await _page(http, "/v1/jobs", per_page=2, next_token=token)

    assert [item["ID"] for item in first + second] == ["a", "b", "d"]
    assert last_token == ""
    assert second_index > first_index  # each page is read at its own index: the list is no snapshot


async def test_filter_pages_count_only_matching_objects(http: aiohttp.ClientSession, make_job: MakeJob) -> None:
    for job_id, job_type in [("a", "batch"), ("b", "service"), ("c", "batch"), ("d", "batch"), ("e", "service")]:
        await _register(http, make_job(job_id, count=1, distinct=False, job_type=job_type))

    pages = await _all_pages(http, "/v1/jobs", per_page=2, filter='Type == "batch"')

    assert [[item["ID"] for item in items] for items, _, _ in pages] == [["a", "c"], ["d"]]


async def test_paging_parameters_at_their_edges(http: aiohttp.ClientSession, make_job: MakeJob) -> None:
    for job_id in ("a", "b", "c"):
        await _register(http, make_job(job_id, count=1, distinct=False))

    assert [item["ID"] for item in (await _page(http, "/v1/jobs", per_page=0))[0]] == ["a", "b", "c"]
    assert (await _page(http, "/v1/jobs", per_page=3))[1] == ""  # exactly one full page: no token
    items, token, _ = await _page(http, "/v1/jobs", per_page=-1)  # Nomad's paginator stops before the first
    assert (items, token) == ([], "default.a")
    items, token, _ = await _page(http, "/v1/jobs", per_page=2, next_token="default.zzz")  # beyond the end
    assert (items, token) == ([], "")
    items, _, _ = await _page(http, "/v1/jobs", per_page=5, next_token="default.b")
    assert [item["ID"] for item in items] == ["b", "c"]


async def test_a_per_page_that_is_not_a_32_bit_number_is_a_400(http: aiohttp.ClientSession) -> None:
    for bad in ("many", "1.5", "2147483648", "", "0x10"):
        async with http.get("/v1/allocations", params={"per_page": bad}) as response:
            if bad == "":
                assert response.status == 200  # an empty value is no value, as in Nomad
                continue
            assert response.status == 400, bad
            assert await response.text() == "Expect a number for `per_page` query string parameter"
