"""Nomad's list pagination (`per_page`, `next_token`, `X-Nomad-NextToken`), route by route, as pure functions.

A client that pages through a list trusts two things: every object is on exactly one page, and the token it is handed
points at the first object of the next page. Both break quietly if the simulator sorts by a different key than Nomad,
or compares tokens differently, so the order of each route is data here, transcribed from Nomad's state iterators and
tokenizers (nomad/state/paginator/tokenizer.go and the `List` RPCs):

- jobs and variables: `(Namespace, ID)` (a variable's ID is its Path), token `"<namespace>.<id>"`;
- allocations, evaluations and deployments: `(CreateIndex, ID)`, token `"<create index>.<id>"`, the index compared as
  a number (so "12.x" sorts before "102.y"); with `prefix=` they are iterated by ID and the token is the ID;
- nodes: `ID`.

The paginator skips objects that sort before `next_token` until it meets the first one at or after it; `per_page=0`
or no `per_page` is the whole list; the token of the object after the last one returned comes back in
`X-Nomad-NextToken`, and no header means the last page. `reverse=true` walks the same order backwards. `per_page` is
a signed 32-bit number; a negative one makes Nomad's paginator stop before the first object, so the page is empty and
its token is the first object's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nomad_operator.sim.errors import bad_request

NUMERIC_FIELDS = frozenset({"CreateIndex", "ModifyIndex"})
"""Token fields that Nomad compares as numbers, not as text."""

PER_PAGE_ERROR = "Expect a number for `per_page` query string parameter"

_SortKey = tuple[Any, ...]
_INT32 = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True, slots=True)
class ListOrder:
    """The order of a list route and the fields of its token, joined with "." (a character no namespace holds)."""

    fields: tuple[str, ...]

    def key_of(self, item: Mapping[str, Any]) -> _SortKey:
        return tuple(_field(item, name) for name in self.fields)

    def token_of(self, item: Mapping[str, Any]) -> str:
        return ".".join(str(value) for value in self.key_of(item))

    def parse_token(self, token: str) -> _SortKey | None:
        """The sort key a token stands for, or None when it is not shaped like this route's tokens (Nomad then
        compares the token as plain text)."""
        parts = token.split(".", len(self.fields) - 1)
        if len(parts) != len(self.fields):
            return None
        key: list[Any] = []
        for name, part in zip(self.fields, parts, strict=True):
            if name in NUMERIC_FIELDS:
                if not part.isdigit():
                    return None
                key.append(int(part))
            else:
                key.append(part)
        return tuple(key)


BY_ID = ListOrder(("ID",))
BY_NAMESPACE_ID = ListOrder(("Namespace", "ID"))
BY_CREATE_INDEX_ID = ListOrder(("CreateIndex", "ID"))
BY_NAMESPACE_PATH = ListOrder(("Namespace", "Path"))


@dataclass(frozen=True, slots=True)
class PageRequest:
    """The paging parameters of one list request."""

    per_page: int
    next_token: str
    reverse: bool

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> PageRequest:
        text = query.get("per_page", "")
        per_page = 0
        if text:
            # Go's strconv.ParseInt(text, 10, 32): an optional sign and decimal digits that fit in 32 bits.
            if _INT32.fullmatch(text) is None or not -(2**31) <= int(text) < 2**31:
                raise bad_request(PER_PAGE_ERROR)
            per_page = int(text)
        return cls(per_page=per_page, next_token=query.get("next_token", ""), reverse=query.get("reverse") == "true")


def page_of(
    items: Sequence[Mapping[str, Any]], order: ListOrder, request: PageRequest
) -> tuple[list[Mapping[str, Any]], str]:
    """One page of `items` in `order`, and the next page's token ("" when this is the last page)."""
    ordered = sorted(items, key=order.key_of, reverse=request.reverse)
    start = _first_at_or_after(ordered, order, request) if request.next_token else 0
    if request.per_page == 0:
        return list(ordered[start:]), ""
    if request.per_page < 0:
        return [], order.token_of(ordered[start]) if start < len(ordered) else ""
    end = start + request.per_page
    next_token = order.token_of(ordered[end]) if end < len(ordered) else ""
    return list(ordered[start:end]), next_token


def _first_at_or_after(ordered: Sequence[Mapping[str, Any]], order: ListOrder, request: PageRequest) -> int:
    """Where the page starts: the first object that does not sort before the token (after it, in reverse)."""
    target = order.parse_token(request.next_token)
    for position, item in enumerate(ordered):
        if target is None:
            mine, theirs = order.token_of(item), request.next_token
            before = mine > theirs if request.reverse else mine < theirs
        else:
            key = order.key_of(item)
            before = key > target if request.reverse else key < target
        if not before:
            return position
    return len(ordered)


def _field(item: Mapping[str, Any], name: str) -> Any:
    value = item.get(name)
    if name in NUMERIC_FIELDS:
        return value if isinstance(value, int) else 0
    return "" if value is None else str(value)
