"""Custom resources as values, and how they are laid out in Nomad Variables.

A resource is `{apiVersion, kind, metadata, spec, status}`, Kubernetes-style. It is stored as one Nomad Variable at
`nomad-operator/resources/<kind>/<namespace>/<name>` (kind lower-cased), whose single item `resource` holds the
resource as compact JSON; its `metadata.resourceVersion` is the Variable's ModifyIndex, which is never stored inside
the JSON (it would be stale the moment it was written) but filled in on decode and used for CAS on write.

The hazards handled here are all about not losing or corrupting what users wrote:

- a name that does not fit Nomad's Variable path rules (`^[a-zA-Z0-9-_~/]{1,128}$`) is refused with the rule quoted,
  before anything is sent;
- a resource whose items exceed Nomad's 64 KiB is refused with its size and the limit (`ResourceTooLarge`);
- `generation` counts spec changes only: a spec write that changes nothing keeps it, a status write never touches it,
  so `observedGeneration == generation` reliably means "the controller has seen the latest spec";
- a spec write never erases status, and a status write never changes the spec (Kubernetes' status subresource);
- deletion honours finalizers: a resource with finalizers is only marked (`deletionTimestamp`), and is removed when
  the last finalizer goes.

All functions here are pure; the CAS writes and blocking-query watches that use them live on the Nomad client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

import orjson

from nomad_operator.runtime.conditions import format_time
from nomad_operator.runtime.defaults import (
    DEFAULT_NAMESPACE,
    RESOURCE_VARIABLE_ITEM,
    RESOURCE_VARIABLE_PREFIX,
    VARIABLE_ITEMS_MAX_BYTES,
    VARIABLE_PATH_MAX_LENGTH,
)
from nomad_operator.runtime.errors import InvalidResource, ResourceTooLarge, UndecodableVariable
from nomad_operator.runtime.reconciler import ObjectKey

NAME_PATTERN: Final = r"^[a-zA-Z0-9][a-zA-Z0-9_~-]*$"
"""A resource name: the characters of a Nomad Variable path except `/` (it would add a path level)."""
NAMESPACE_PATTERN: Final = r"^[a-zA-Z0-9-]{1,128}$"
"""A namespace, as Nomad names namespaces."""
VARIABLE_PATH_PATTERN: Final = r"^[a-zA-Z0-9-_~/]{1,128}$"
_NAME = re.compile(NAME_PATTERN)
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_VARIABLE_PATH = re.compile(VARIABLE_PATH_PATTERN)


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """A resource's metadata. `generation` and `resource_version` are set by the runtime, never by users."""

    name: str
    namespace: str = DEFAULT_NAMESPACE
    generation: int = 0
    resource_version: int = 0
    finalizers: tuple[str, ...] = ()
    deletion_timestamp: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "generation": self.generation}
        if self.resource_version:
            data["resourceVersion"] = self.resource_version
        if self.finalizers:
            data["finalizers"] = list(self.finalizers)
        if self.deletion_timestamp is not None:
            data["deletionTimestamp"] = self.deletion_timestamp
        if self.labels:
            data["labels"] = dict(self.labels)
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectMeta:
        """Build from an already validated metadata document."""
        version = data.get("resourceVersion", 0)
        return cls(
            name=data["name"],
            namespace=data.get("namespace") or DEFAULT_NAMESPACE,
            generation=int(data.get("generation", 0)),
            resource_version=int(version) if version not in (None, "") else 0,
            finalizers=tuple(data.get("finalizers") or ()),
            deletion_timestamp=data.get("deletionTimestamp"),
            labels=dict(data.get("labels") or {}),
            annotations=dict(data.get("annotations") or {}),
        )


@dataclass(frozen=True, slots=True)
class Resource:
    """One custom resource. Treat `spec` and `status` as read-only; derive changed copies with the functions below."""

    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: Mapping[str, Any]
    status: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.metadata.namespace, self.metadata.name)

    @property
    def deleting(self) -> bool:
        return self.metadata.deletion_timestamp is not None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": self.metadata.to_dict(),
            "spec": dict(self.spec),
        }
        if self.status:
            data["status"] = dict(self.status)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resource:
        """Build from an already validated resource document."""
        return cls(
            api_version=data["apiVersion"],
            kind=data["kind"],
            metadata=ObjectMeta.from_dict(data["metadata"]),
            spec=dict(data.get("spec") or {}),
            status=dict(data.get("status") or {}),
        )


# --- the lifecycle rules ---------------------------------------------------------------------------------------------
def merge_spec_write(incoming: Resource, *, stored: Resource | None) -> Resource:
    """The resource to store when a user writes `incoming` over `stored` (None when it is new).

    Generation starts at 1 and grows by one when the spec changes; status, deletionTimestamp and resourceVersion come
    from the stored resource (users cannot set them); labels, annotations and finalizers come from the write.
    """
    if stored is None:
        metadata = replace(incoming.metadata, generation=1, resource_version=0, deletion_timestamp=None)
        return replace(incoming, metadata=metadata, status={})
    changed = dict(incoming.spec) != dict(stored.spec)
    metadata = replace(
        incoming.metadata,
        generation=stored.metadata.generation + 1 if changed else stored.metadata.generation,
        resource_version=stored.metadata.resource_version,
        deletion_timestamp=stored.metadata.deletion_timestamp,
    )
    return replace(incoming, metadata=metadata, status=stored.status)


def with_status(stored: Resource, status: Mapping[str, Any]) -> Resource:
    """The resource with a new status; spec, generation and the rest untouched."""
    return replace(stored, status=dict(status))


def plan_delete(stored: Resource, *, now: datetime) -> Resource | None:
    """None if the resource can be removed now; otherwise the resource marked for deletion, to be stored instead.

    A resource with finalizers only gets a `deletionTimestamp` (kept from the first request); the controllers that
    own the finalizers clean up and remove them, and `remove_finalizer` then says when it may finally go.
    """
    if not stored.metadata.finalizers:
        return None
    if stored.metadata.deletion_timestamp is not None:
        return stored
    return replace(stored, metadata=replace(stored.metadata, deletion_timestamp=format_time(now)))


def add_finalizer(resource: Resource, finalizer: str) -> Resource:
    if finalizer in resource.metadata.finalizers:
        return resource
    if resource.deleting:
        raise InvalidResource(f"{resource.key} is being deleted", [f"cannot add finalizer {finalizer!r}"])
    return replace(resource, metadata=replace(resource.metadata, finalizers=(*resource.metadata.finalizers, finalizer)))


def remove_finalizer(resource: Resource, finalizer: str) -> Resource:
    remaining = tuple(name for name in resource.metadata.finalizers if name != finalizer)
    return replace(resource, metadata=replace(resource.metadata, finalizers=remaining))


def may_be_removed(resource: Resource) -> bool:
    """True once a resource marked for deletion has no finalizers left."""
    return resource.deleting and not resource.metadata.finalizers


# --- Nomad Variable layout --------------------------------------------------------------------------------------------
def name_violations(kind: str, namespace: str, name: str) -> list[str]:
    """Every reason why (kind, namespace, name) cannot be stored as a Nomad Variable; empty when it can."""
    problems: list[str] = []
    if not _NAME.match(name):
        problems.append(f"metadata.name {name!r} must match {NAME_PATTERN}")
    if not _NAMESPACE.match(namespace):
        problems.append(f"metadata.namespace {namespace!r} must match {NAMESPACE_PATTERN}")
    if not problems:
        path = _join_path(kind, namespace, name)
        if len(path) > VARIABLE_PATH_MAX_LENGTH:
            problems.append(
                f"the Variable path {path!r} is {len(path)} characters; Nomad allows {VARIABLE_PATH_MAX_LENGTH}: "
                f"shorten metadata.name or metadata.namespace"
            )
        elif not _VARIABLE_PATH.match(path):
            problems.append(f"the Variable path {path!r} must match {VARIABLE_PATH_PATTERN}")
    return problems


def variable_path(kind: str, namespace: str, name: str) -> str:
    """`nomad-operator/resources/<kind>/<namespace>/<name>`, refusing what Nomad would refuse."""
    problems = name_violations(kind, namespace, name)
    if problems:
        raise InvalidResource(f"{kind} {namespace}/{name} cannot be stored in a Nomad Variable", problems)
    return _join_path(kind, namespace, name)


def kind_prefix(kind: str) -> str:
    """The Variable path prefix under which all resources of `kind` live (for `/v1/vars?prefix=` watches)."""
    return f"{RESOURCE_VARIABLE_PREFIX}/{kind.lower()}/"


def parse_variable_path(path: str) -> tuple[str, str, str]:
    """(lower-cased kind, namespace, name) of a resource Variable path."""
    prefix = RESOURCE_VARIABLE_PREFIX + "/"
    parts = path[len(prefix) :].split("/") if path.startswith(prefix) else []
    if len(parts) != 3 or not all(parts):
        raise UndecodableVariable(f"{path!r} is not a resource path ({prefix}<kind>/<namespace>/<name>)")
    return parts[0], parts[1], parts[2]


def encode_items(resource: Resource) -> dict[str, str]:
    """The Variable Items holding `resource`; `ResourceTooLarge` if Nomad would refuse them."""
    document = resource.to_dict()
    document["metadata"].pop("resourceVersion", None)
    items = {RESOURCE_VARIABLE_ITEM: orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()}
    size = items_size(items)
    if size > VARIABLE_ITEMS_MAX_BYTES:
        raise ResourceTooLarge(
            f"{resource.key} encodes to {size} bytes; a Nomad Variable holds at most {VARIABLE_ITEMS_MAX_BYTES} bytes "
            f"(VARIABLE_ITEMS_MAX_BYTES): make the spec smaller or split it into several resources"
        )
    return items


def items_size(items: Mapping[str, str]) -> int:
    """Nomad's measure of a Variable (VariableItems.Size): bytes of every key and value."""
    return sum(len(key.encode()) + len(value.encode()) for key, value in items.items())


def decode_document(items: Mapping[str, Any], *, modify_index: int, path: str = "?") -> dict[str, Any]:
    """The resource document stored in a Variable's Items, with `resourceVersion` set to the Variable's ModifyIndex.

    Validate it with the kind registry (a kind file may have changed since it was written) before trusting it.
    """
    raw = items.get(RESOURCE_VARIABLE_ITEM)
    if not isinstance(raw, str):
        raise UndecodableVariable(f"Variable {path!r} has no {RESOURCE_VARIABLE_ITEM!r} item holding a resource")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        message = f"Variable {path!r}: the {RESOURCE_VARIABLE_ITEM!r} item is not JSON: {error}"
        raise UndecodableVariable(message) from None
    if not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
        raise UndecodableVariable(f"Variable {path!r}: the {RESOURCE_VARIABLE_ITEM!r} item is not a resource document")
    document["metadata"]["resourceVersion"] = modify_index
    return document


def _join_path(kind: str, namespace: str, name: str) -> str:
    return f"{RESOURCE_VARIABLE_PREFIX}/{kind.lower()}/{namespace}/{name}"
