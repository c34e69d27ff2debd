"""Nomad Variables with check-and-set and locks, the operator's storage for status, custom resources and leadership.

Leader election rides on `?lock-acquire` with a TTL and a LockDelay, and every status write is `?cas=`. Getting the
edge cases wrong would let two replicas both believe they lead, so each rule follows Nomad: CAS conflicts answer 409
with the current variable as body, cas=0 means create-only, a held lock refuses writes, renewals and acquisitions with
another ID (409), an expired lock cannot be taken again until LockDelay has passed, TTLs outside 10 s..24 h are
rejected, and a delete answers 204 with no body.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from nomad_operator.durations import InvalidDuration, format_duration, parse_duration, to_seconds
from nomad_operator.sim.config import (
    VARIABLE_ITEMS_MAX_BYTES,
    VARIABLE_LOCK_DEFAULT_DELAY_S,
    VARIABLE_LOCK_DEFAULT_TTL_S,
    VARIABLE_LOCK_MAX_TTL_S,
    VARIABLE_LOCK_MIN_TTL_S,
)
from nomad_operator.sim.errors import ApiError, bad_request, not_found
from nomad_operator.sim.state import StateStore, now_ns

PATH_PATTERN = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")
LOCK_OPERATIONS = ("lock-acquire", "lock-renew", "lock-release")


def metadata(variable: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in variable.items() if key != "Items"}


def parse_cas(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
        if value < 0:
            raise ValueError
    except ValueError:
        raise bad_request(f'can not parse cas: strconv.ParseUint: parsing "{text}": invalid syntax') from None
    return value


class VariableStore:
    def __init__(self, store: StateStore, *, time_scale: float = 1.0) -> None:
        self._store = store
        self._time_scale = time_scale
        self._expiry: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._delay_until: dict[tuple[str, str], float] = {}

    def stop(self) -> None:
        for timer in self._expiry.values():
            timer.cancel()
        self._expiry.clear()

    def get(self, namespace: str, path: str) -> dict[str, Any]:
        if not path:
            raise bad_request("missing variable path")
        variable = self._store.variables.get((namespace, path))
        if variable is None:
            raise not_found("variable not found")
        return variable

    def list(self, namespace: str, prefix: str) -> list[dict[str, Any]]:
        return [metadata(variable) for (ns, path), variable in sorted(self._store.variables.items())
                if namespace in ("*", ns) and path.startswith(prefix)]

    def _conflict(self, current: Mapping[str, Any] | None, namespace: str, path: str) -> ApiError:
        body: dict[str, Any] = dict(current) if current is not None else {
            "CreateIndex": 0, "CreateTime": 0, "ModifyIndex": 0, "ModifyTime": 0, "Namespace": namespace,
            "Path": path}
        return ApiError(409, "conflict", body=body, index=int(body["ModifyIndex"]))

    def put(self, namespace: str, path: str, body: Any, query: Mapping[str, str]) -> dict[str, Any]:
        if not path:
            raise bad_request("missing variable path")
        if not PATH_PATTERN.match(path):
            raise bad_request(f'invalid path "{path}"')
        operations = [op for op in LOCK_OPERATIONS if op in query]
        if len(operations) > 1:
            raise bad_request("multiple lock operations")
        cas = parse_cas(query.get("cas"))
        if operations and cas is not None:
            raise bad_request("CAS can't be used with lock operations")
        if not isinstance(body, dict):
            raise bad_request("Request body is empty")
        key = (namespace, path)
        current = self._store.variables.get(key)
        if operations:
            return self._lock_operation(operations[0], key, current, body)
        items = body.get("Items")
        if not items:
            raise bad_request("variable missing required Items object")
        self._check_items(items)
        if cas is not None and (current["ModifyIndex"] if current else 0) != cas:
            raise self._conflict(current, namespace, path)
        lock = (current or {}).get("Lock")
        if lock and (body.get("Lock") or {}).get("ID") != lock.get("ID"):
            raise self._conflict(current, namespace, path)
        return self._write(key, current, items=items, lock=lock)

    @staticmethod
    def _check_items(items: Any) -> None:
        if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
            raise bad_request("variable Items must be a map of strings")
        if len(orjson.dumps(items)) > VARIABLE_ITEMS_MAX_BYTES:
            raise bad_request("variables are limited to 64KiB in total size")

    def _write(self, key: tuple[str, str], current: Mapping[str, Any] | None, *, items: Mapping[str, str],
               lock: Mapping[str, Any] | None) -> dict[str, Any]:
        with self._store.write("VariableUpdated") as txn:
            now = now_ns()
            variable: dict[str, Any] = {
                "CreateIndex": current["CreateIndex"] if current else txn.index,
                "CreateTime": current["CreateTime"] if current else now,
                "Items": dict(items),
                "ModifyIndex": txn.index,
                "ModifyTime": now,
                "Namespace": key[0],
                "Path": key[1],
            }
            if lock:
                variable["Lock"] = dict(lock)
            self._store.put_variable(txn, variable)
        return variable

    def _lock_operation(self, operation: str, key: tuple[str, str], current: Mapping[str, Any] | None,
                        body: Mapping[str, Any]) -> dict[str, Any]:
        requested = body.get("Lock") or {}
        held = (current or {}).get("Lock")
        if operation == "lock-acquire":
            ttl = self._duration(requested.get("TTL"), VARIABLE_LOCK_DEFAULT_TTL_S)
            delay = self._duration(requested.get("LockDelay"), VARIABLE_LOCK_DEFAULT_DELAY_S)
            if not VARIABLE_LOCK_MIN_TTL_S <= ttl <= VARIABLE_LOCK_MAX_TTL_S:
                raise bad_request("TTL must be between 10 seconds and 24 hours")
            if held or time.monotonic() < self._delay_until.get(key, 0.0):
                raise self._conflict(current, *key)
            items = body.get("Items")
            if items:
                self._check_items(items)
            lock = {"TTL": format_duration(round(ttl * 1e9)), "LockDelay": format_duration(round(delay * 1e9)),
                    "ID": str(uuid.uuid4())}
            variable = self._write(key, current, items=items or (current or {}).get("Items") or {}, lock=lock)
            self._arm(key, ttl, delay, lock["ID"])
            return variable
        if not held:
            raise ApiError(409, "variable doesn't hold a lock", body=dict(current) if current else None)
        if requested.get("ID") != held.get("ID"):
            raise self._conflict(current, *key)
        assert current is not None
        if operation == "lock-renew":
            self._arm(key, to_seconds(parse_duration(held["TTL"])), to_seconds(parse_duration(held["LockDelay"])),
                      held["ID"])
            return metadata(current)
        if body.get("Items"):
            raise bad_request("can't release a lock with items; remove items from the request")
        timer = self._expiry.pop(key, None)
        if timer is not None:
            timer.cancel()
        return self._write(key, current, items=current.get("Items") or {}, lock=None)

    @staticmethod
    def _duration(value: Any, default: float) -> float:
        if value in (None, ""):
            return default
        try:
            seconds = to_seconds(parse_duration(str(value))) if isinstance(value, str) else float(value) / 1e9
        except InvalidDuration as error:
            raise bad_request(str(error)) from None
        if seconds < 0:
            raise bad_request("lock TTL and LockDelay can't be negative")
        return seconds

    def _arm(self, key: tuple[str, str], ttl: float, delay: float, lock_id: str) -> None:
        previous = self._expiry.pop(key, None)
        if previous is not None:
            previous.cancel()
        self._expiry[key] = asyncio.get_running_loop().call_later(ttl * self._time_scale, self._expire, key,
                                                                  delay * self._time_scale, lock_id)

    def _expire(self, key: tuple[str, str], delay: float, lock_id: str) -> None:
        """The holder stopped renewing: drop the lock and refuse new holders for LockDelay."""
        self._expiry.pop(key, None)
        current = self._store.variables.get(key)
        if current is None or (current.get("Lock") or {}).get("ID") != lock_id:
            return
        self._delay_until[key] = time.monotonic() + delay
        self._write(key, current, items=current.get("Items") or {}, lock=None)

    def delete(self, namespace: str, path: str, query: Mapping[str, str]) -> int:
        cas = parse_cas(query.get("cas"))
        key = (namespace, path)
        current = self._store.variables.get(key)
        if cas is not None and (current["ModifyIndex"] if current else 0) != cas:
            raise self._conflict(current, namespace, path)
        if current is not None and current.get("Lock"):
            raise self._conflict(current, namespace, path)
        with self._store.write("VariableUpdated") as txn:
            if current is not None:
                self._store.put_variable(txn, dict(current), deleted=True)
            else:
                txn.touch("variables")
        return txn.index
