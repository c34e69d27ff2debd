"""Reading a Nomad list a page at a time (`per_page`, `next_token`), so no caller ever holds a whole big list.

A cluster's allocation list is the biggest answer Nomad gives: 10,000 allocations are tens of MB of JSON and several
times that once decoded, all alive at once if the list is read in one request. Paging bounds that to one page. The
hazards of paging are handled here, once, for every list: a page that is not a JSON array, a server whose token does
not advance (it would hand out the same page forever), and a list that never ends (a bounded number of pages). What
paging cannot give is a snapshot: each page is read at its own index, which is why each page carries its own
`X-Nomad-Index` and callers that follow a list with the event stream start after the FIRST page's index. Every list
route of the API areas is the same pair built here: the whole list (or one page, or a blocking read) by prefix, and
its pages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Unpack

from nomad_operator.nomad.defaults import DEFAULT_LIST_PAGE_SIZE, MAX_LIST_PAGES
from nomad_operator.nomad.errors import InvalidResponse
from nomad_operator.nomad.results import QueryResult
from nomad_operator.nomad.transport import CallOptions, ListOptions, NomadTransport


class PageOptions(CallOptions, total=False):
    """Per-call options of a page iterator: the overrides, the page size (`per_page`) and a server-side `filter`."""

    per_page: int
    filter: str | None


def _prefix_params(prefix: str | None) -> Mapping[str, str] | None:
    return {"prefix": prefix} if prefix else None


class PagedLists(NomadTransport):
    """The list reads every API area's lists are made of: the whole list (or one page) by prefix, and the pages.

    Each list route of the API areas is a pair built on these two: `list_<kind>s` and `<kind>_pages`.
    """

    async def _list_by_prefix(
        self, path: str, *, prefix: str | None, namespaced: bool = True, **options: Unpack[ListOptions]
    ) -> QueryResult[Any]:
        return await self._list(path, params=_prefix_params(prefix), namespaced=namespaced, **options)

    async def _pages(
        self,
        path: str,
        *,
        prefix: str | None,
        namespaced: bool = True,
        per_page: int = DEFAULT_LIST_PAGE_SIZE,
        filter: str | None = None,
        **options: Unpack[CallOptions],
    ) -> AsyncIterator[QueryResult[list[Any]]]:
        """Each page of the list at `path` with its own index, until Nomad sends no `X-Nomad-NextToken`."""
        if type(per_page) is not int or per_page < 1:
            raise ValueError(f"per_page must be an integer >= 1, got {per_page!r}")
        params = _prefix_params(prefix)
        token = ""
        for _ in range(MAX_LIST_PAGES):
            page = await self._list(
                path, params=params, namespaced=namespaced, per_page=per_page, next_token=token, filter=filter,
                namespace=options.get("namespace"), region=options.get("region"),
            )  # fmt: skip
            if not isinstance(page.value, list):
                raise InvalidResponse(f"GET {path}: expected a JSON array of a page, got {type(page.value).__name__}")
            yield page
            if not page.next_token:
                return
            if page.next_token == token:
                raise InvalidResponse(f"GET {path}: the next page token did not advance ({token[:80]!r})")
            token = page.next_token
        raise InvalidResponse(f"GET {path}: the list goes on beyond MAX_LIST_PAGES={MAX_LIST_PAGES} pages; stopped")
