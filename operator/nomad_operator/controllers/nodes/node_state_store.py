"""What the node controller keeps in Nomad: its flap holds, and where it reads its `NodePolicy`.

Two hazards. **Leader change:** a node held ineligible by one replica must be released by the next leader, and an
ineligible node that no replica held (a person's maintenance) must never be released. So every hold is recorded in
the Variable `nomad-operator/nodes/holds`, written with compare-and-swap (DESIGN rule 3); a conflict means another
writer won, and the holds are re-read and merged, never overwritten. **A bad policy:** the NodePolicy resource is read
from its Variable (the layout in crds/README.md); a resource that does not parse or validate keeps the last good
policy (the defaults at first), and the error is reported rather than switching damping off.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from nomad_operator.controllers.nodes.defaults import HOLDS_VARIABLE_ITEM, HOLDS_VARIABLE_PATH, POLICY_NAME
from nomad_operator.controllers.nodes.flapping import Hold
from nomad_operator.controllers.nodes.policy import DEFAULT_POLICY, NodePolicy, PolicyError, policy_from_spec
from nomad_operator.nomad import Conflict, NotFound, QueryResult
from nomad_operator.nomad.results import JSONObject
from nomad_operator.runtime.defaults import RESOURCE_VARIABLE_ITEM, RESOURCE_VARIABLE_PREFIX

POLICY_VARIABLE_PATH = f"{RESOURCE_VARIABLE_PREFIX}/nodepolicy/default/{POLICY_NAME}"
STATUS_VARIABLE_PATH = "nomad-operator/status/nodes"
STATUS_VARIABLE_ITEM = "status"
HOLD_WRITE_ATTEMPTS = 3

_log = logging.getLogger("nomad_operator.controllers.nodes")


class VariableAccess(Protocol):
    """The part of `NomadClient` used here."""

    async def read_variable(self, path: str) -> QueryResult[JSONObject]: ...

    async def put_variable(self, path: str, items: Mapping[str, str], *, cas: int | None = None) -> JSONObject: ...


def holds_to_json(holds: Mapping[str, Hold]) -> str:
    entries = {
        node_id: {"node": h.node_name, "since": h.since, "flaps": h.flaps, "reason": h.reason}
        for node_id, h in sorted(holds.items())
    }
    return orjson.dumps(entries).decode()


def holds_from_json(text: str) -> dict[str, Hold]:
    """Holds from the Variable's item; entries that do not parse are dropped (and never released by us)."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    holds = {}
    if isinstance(raw, dict):
        for node_id, entry in raw.items():
            if isinstance(entry, dict) and isinstance(entry.get("since"), int | float):
                holds[node_id] = Hold(node_id, str(entry.get("node") or node_id[:8]), float(entry["since"]),
                                      int(entry.get("flaps") or 0), str(entry.get("reason") or ""), applied=True)
    return holds


class CasVariable:
    """One Variable item written with compare-and-swap; a conflict re-reads the index and tries again."""

    def __init__(self, nomad: VariableAccess, *, path: str, item: str) -> None:
        self._nomad = nomad
        self.path = path
        self._item = item
        self._index: int | None = None  # ModifyIndex last seen; 0 = absent; None = unknown
        self._written: str | None = None

    async def read(self) -> str | None:
        try:
            result = await self._nomad.read_variable(self.path)
        except NotFound:
            self._index = 0
            return None
        self._index = result.index
        items = result.value.get("Items") or {}
        value = items.get(self._item)
        self._written = value if isinstance(value, str) else None
        return self._written

    async def write(self, value: str) -> bool:
        """Write `value` unless it is what was last written (no write when nothing changed); True if written."""
        if value == self._written:
            return False
        for _ in range(HOLD_WRITE_ATTEMPTS):
            if self._index is None:
                await self.read()
            try:
                written = await self._nomad.put_variable(self.path, {self._item: value}, cas=self._index)
            except Conflict:
                self._index = None
                continue
            self._index = int(written.get("ModifyIndex") or 0) or None
            self._written = value
            return True
        raise RuntimeError(f"could not write variable {self.path}: {HOLD_WRITE_ATTEMPTS} compare-and-swap conflicts")


class HoldStore:
    """The holds Variable: read on becoming leader, written before every hold and after every release."""

    def __init__(self, nomad: VariableAccess, *, path: str = HOLDS_VARIABLE_PATH) -> None:
        self._variable = CasVariable(nomad, path=path, item=HOLDS_VARIABLE_ITEM)

    async def load(self) -> dict[str, Hold]:
        return holds_from_json(await self._variable.read() or "{}")

    async def save(self, holds: Mapping[str, Hold]) -> None:
        await self._variable.write(holds_to_json(holds))


class StatusStore:
    """The node controller's status (incidents, job impacts, held nodes) as JSON in a Variable, for
    `nomad-operator status`, the dashboard and the end-to-end tests. Written only when it changed."""

    def __init__(self, nomad: VariableAccess, *, path: str = STATUS_VARIABLE_PATH) -> None:
        self._variable = CasVariable(nomad, path=path, item=STATUS_VARIABLE_ITEM)

    async def save(self, status: Mapping[str, Any]) -> bool:
        return await self._variable.write(orjson.dumps(status, option=orjson.OPT_SORT_KEYS).decode())


class VariablePolicySource:
    """The NodePolicy resource `default/default`, read from its Variable; the last good policy on any error."""

    def __init__(self, nomad: VariableAccess, *, path: str = POLICY_VARIABLE_PATH) -> None:
        self._nomad = nomad
        self._path = path
        self.policy: NodePolicy = DEFAULT_POLICY
        self.error: str = ""

    async def refresh(self) -> NodePolicy:
        try:
            result = await self._nomad.read_variable(self._path)
        except NotFound:
            self.policy, self.error = DEFAULT_POLICY, ""
            return self.policy
        items = result.value.get("Items") or {}
        try:
            document: Any = orjson.loads(items.get(RESOURCE_VARIABLE_ITEM) or "null")
            spec = document.get("spec") if isinstance(document, dict) else None
            self.policy = policy_from_spec(spec if spec is not None else {})
            self.error = ""
        except (orjson.JSONDecodeError, PolicyError) as error:
            message = f"NodePolicy {POLICY_NAME}: {error}; keeping the previous policy"
            if message != self.error:
                _log.error(message)
            self.error = message
        return self.policy
