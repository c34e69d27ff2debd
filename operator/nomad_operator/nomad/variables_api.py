"""Nomad Variables: the operator's store for custom resources and status, and the lock behind leader election.

Every variable write is meant to be a compare-and-swap (`cas=` the ModifyIndex the decision was based on); a lost
race comes back as `Conflict` carrying the variable that won, so the caller can decide again without another read.
The lock calls are the leader-election path: they bypass the write guard (leader election is what feeds the guard),
and an acquire is never retried, because a repeat of a request that did succeed would find the variable locked, by us,
and report a conflict. TTLs travel as Go duration strings ("15s"), unlike every other duration in Nomad's JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack
from urllib.parse import quote

from nomad_operator.durations import SECOND, format_duration
from nomad_operator.nomad.defaults import LOCK_DEFAULT_DELAY, LOCK_DEFAULT_TTL, LOCK_MAX_TTL, LOCK_MIN_TTL
from nomad_operator.nomad.results import JSONObject, QueryResult, expect_object
from nomad_operator.nomad.transport import CallOptions, NomadTransport, ReadOptions


def variable_path(path: str) -> str:
    """`/v1/var/<path>`; slashes are kept (they are part of variable paths), everything else is escaped."""
    if not path or not path.strip("/"):
        raise ValueError(f"a variable path must not be empty, got {path!r}")
    return f"/v1/var/{quote(path, safe='/')}"


def lock_id_of(variable: Mapping[str, Any]) -> str | None:
    """The lock ID of a variable as Nomad returns it after `lock-acquire`, or None when it holds no lock."""
    lock = variable.get("Lock")
    if isinstance(lock, Mapping):
        lock_id = lock.get("ID")
        if isinstance(lock_id, str) and lock_id:
            return lock_id
    return None


class VariablesAPI(NomadTransport):
    """Calls under /v1/vars and /v1/var/:path, including the lock operations."""

    async def list_variables(
        self, *, prefix: str | None = None, **options: Unpack[ReadOptions]
    ) -> QueryResult[list[JSONObject]]:
        """Variable metadata (no Items). Blocking with `index=`: the way to watch variables before Nomad 2.0."""
        return await self._query("/v1/vars", params={"prefix": prefix} if prefix else None, **options)

    async def read_variable(self, path: str, **options: Unpack[ReadOptions]) -> QueryResult[JSONObject]:
        """The variable with its Items; the index is its ModifyIndex. `NotFound` when absent."""
        return await self._query(variable_path(path), **options)

    async def put_variable(
        self, path: str, items: Mapping[str, str], *, cas: int | None = None, **options: Unpack[CallOptions]
    ) -> JSONObject:
        """Write a variable; with `cas`, only if its ModifyIndex is still `cas` (0 = only if absent).

        Returns the written variable. A lost race raises `Conflict` whose `current` is the variable that won.
        """
        _check_items(items)
        params = {"cas": str(cas)} if cas is not None else None
        body = {"Path": path, "Items": dict(items)}
        answer = await self._send("PUT", variable_path(path), body=body, params=params, idempotent=True, **options)
        return expect_object(answer.body, what="put variable")

    async def delete_variable(self, path: str, *, cas: int | None = None, **options: Unpack[CallOptions]) -> None:
        """Delete a variable (Nomad answers 204); with `cas`, only if its ModifyIndex is still `cas`."""
        params = {"cas": str(cas)} if cas is not None else None
        await self._send("DELETE", variable_path(path), params=params, idempotent=True, **options)

    async def lock_acquire(
        self,
        path: str,
        *,
        ttl: float = LOCK_DEFAULT_TTL,
        lock_delay: float = LOCK_DEFAULT_DELAY,
        items: Mapping[str, str] | None = None,
        **options: Unpack[CallOptions],
    ) -> JSONObject:
        """Take the lock on a variable (creating it if needed). Returns the variable with `Lock.ID` (see
        `lock_id_of`). `Conflict` when someone else holds it, or within `lock_delay` after a lapsed holder."""
        if not LOCK_MIN_TTL <= ttl <= LOCK_MAX_TTL:
            raise ValueError(f"a lock TTL must be between {LOCK_MIN_TTL:g}s and {LOCK_MAX_TTL:g}s, got {ttl:g}s")
        if lock_delay < 0:
            raise ValueError(f"a lock delay must not be negative, got {lock_delay:g}s")
        body: dict[str, Any] = {
            "Path": path,
            "Lock": {
                "TTL": format_duration(round(ttl * SECOND)),
                "LockDelay": format_duration(round(lock_delay * SECOND)),
            },
        }
        if items is not None:
            _check_items(items)
            body["Items"] = dict(items)
        answer = await self._send(
            "PUT",
            variable_path(path),
            body=body,
            params={"lock-acquire": ""},
            idempotent=False,
            guarded=False,
            **options,
        )
        return expect_object(answer.body, what="lock acquire")

    async def lock_renew(self, path: str, lock_id: str, **options: Unpack[CallOptions]) -> JSONObject:
        """Extend the lock by its TTL. `Conflict` when the lock is no longer ours. Returns variable metadata."""
        return await self._lock_operation("lock-renew", path, lock_id, options)

    async def lock_release(self, path: str, lock_id: str, **options: Unpack[CallOptions]) -> JSONObject:
        """Give the lock up at once, so another replica can take it without waiting for the TTL."""
        return await self._lock_operation("lock-release", path, lock_id, options)

    async def _lock_operation(self, operation: str, path: str, lock_id: str, options: CallOptions) -> JSONObject:
        if not lock_id:
            raise ValueError("a lock ID must not be empty")
        answer = await self._send(
            "PUT",
            variable_path(path),
            body={"Path": path, "Lock": {"ID": lock_id}},
            params={operation: ""},
            idempotent=True,
            guarded=False,
            **options,
        )
        return expect_object(answer.body, what=operation)


def _check_items(items: Mapping[str, str]) -> None:
    for key, value in items.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"variable items map strings to strings; {key!r} maps to a {type(value).__name__}")
