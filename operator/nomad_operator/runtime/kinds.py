"""Custom-resource kinds: loaded from the YAML files in `crds/`, and the validation of resources against them.

A kind file declares a kind's names (kind, plural, short names), its apiVersion, JSON Schemas (Draft 2020-12) for
`spec` and `status`, and the columns `nomad-operator get` prints; `crds/README.md` documents the format. The hazards:

- **A broken kind file** must not half-load. `load_kinds()` checks every file (YAML syntax, the kind-file format, the
  schemas against the 2020-12 meta-schema, names clashing across files) and raises one `KindDefinitionError` that
  lists every problem with its file, or returns a complete registry.
- **A bad resource** must be refused before anything is stored, with every violation listed at once (so one edit fixes
  them all): unknown kinds (`UnknownKind`), schema violations in spec or metadata, names that do not fit a Nomad
  Variable path (`InvalidResource`), and resources larger than a Variable holds (`ResourceTooLarge`).
- **Spec and status are separate.** A spec write is checked against the spec schema only, and any status in it is
  ignored (status belongs to controllers); a status write is checked against the status schema only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from nomad_operator.runtime.errors import InvalidResource, KindDefinitionError, UnknownKind
from nomad_operator.runtime.resources import Resource, encode_items, name_violations

KIND_FILE_SUFFIXES: Final = (".yaml", ".yml")
KIND_FILE_MAX_BYTES: Final = 1024 * 1024
"""A kind file larger than this is refused unread (kind files are a few KiB)."""
VIOLATION_MESSAGE_MAX_LENGTH: Final = 300
"""jsonschema quotes offending values in full; long ones are cut so an error stays readable."""

_IDENTIFIER_PATH = r"^(\.[A-Za-z_][A-Za-z0-9_]*)+$"

KIND_FILE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["apiVersion", "kind", "plural", "schema"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"type": "string", "pattern": r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?/v[0-9]+((alpha|beta)[0-9]+)?$"},
        "kind": {"type": "string", "pattern": r"^[A-Z][A-Za-z0-9]{0,62}$"},
        "plural": {"type": "string", "pattern": r"^[a-z][a-z0-9]{0,62}$"},
        "shortNames": {
            "type": "array",
            "uniqueItems": True,
            "items": {"type": "string", "pattern": r"^[a-z][a-z0-9]{0,15}$"},
        },
        "scope": {"const": "Namespaced"},
        "description": {"type": "string"},
        "schema": {
            "type": "object",
            "required": ["spec"],
            "additionalProperties": False,
            "properties": {"spec": {"type": "object"}, "status": {"type": "object"}},
        },
        "printerColumns": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "path"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 40},
                    "path": {"type": "string", "pattern": _IDENTIFIER_PATH},
                    "type": {"enum": ["string", "integer", "number", "boolean", "date"]},
                    "description": {"type": "string"},
                },
            },
        },
    },
}
"""The format of a kind file itself."""

RESOURCE_ENVELOPE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "spec": {"type": "object"},
        "status": {"type": "object"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "generation": {"type": "integer", "minimum": 0},
                "resourceVersion": {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0},
                "finalizers": {
                    "type": "array",
                    "uniqueItems": True,
                    "items": {"type": "string", "pattern": r"^[a-z0-9.-]+(/[a-zA-Z0-9._-]+)?$", "maxLength": 253},
                },
                "deletionTimestamp": {"type": ["string", "null"]},
                "labels": {"$ref": "#/$defs/stringMap"},
                "annotations": {"$ref": "#/$defs/stringMap"},
            },
        },
    },
    "$defs": {
        "stringMap": {
            "type": "object",
            "propertyNames": {"pattern": r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,252})?$"},
            "additionalProperties": {"type": "string"},
        }
    },
}
"""What every resource must look like, whatever its kind: the envelope and the metadata rules."""

_KIND_FILE_VALIDATOR = Draft202012Validator(KIND_FILE_SCHEMA)
_ENVELOPE_VALIDATOR = Draft202012Validator(RESOURCE_ENVELOPE_SCHEMA)
_META_VALIDATOR = Draft202012Validator(Draft202012Validator.META_SCHEMA)
_DEFAULT_STATUS_SCHEMA: Final[dict[str, Any]] = {"type": "object"}


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """A column of `nomad-operator get`: a header and a dotted path into the resource (`.status.revision`)."""

    name: str
    path: str
    type: str = "string"

    def value_in(self, document: Mapping[str, Any]) -> str:
        value: Any = document
        for part in self.path.strip(".").split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


@dataclass(frozen=True, slots=True)
class KindDefinition:
    """One kind, as its file in `crds/` declares it."""

    api_version: str
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec_schema: Mapping[str, Any]
    status_schema: Mapping[str, Any]
    printer_columns: tuple[PrinterColumn, ...] = ()
    description: str = ""
    source: str = ""
    _spec_validator: Draft202012Validator = field(init=False, repr=False, compare=False)
    _status_validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checker = Draft202012Validator.FORMAT_CHECKER
        object.__setattr__(self, "_spec_validator", Draft202012Validator(self.spec_schema, format_checker=checker))
        object.__setattr__(self, "_status_validator", Draft202012Validator(self.status_schema, format_checker=checker))

    def names(self) -> tuple[str, ...]:
        """Every name the CLI accepts for this kind, lower-cased."""
        return (self.kind.lower(), self.plural, *self.short_names)

    def spec_violations(self, spec: Any) -> list[str]:
        return _violations(self._spec_validator.iter_errors(spec), root="spec")

    def status_violations(self, status: Any) -> list[str]:
        return _violations(self._status_validator.iter_errors(status), root="status")

    def printer_row(self, resource: Resource) -> list[str]:
        """NAME, NAMESPACE, then this kind's printer columns."""
        document = resource.to_dict()
        columns = [column.value_in(document) for column in self.printer_columns]
        return [resource.metadata.name, resource.metadata.namespace, *columns]


class KindRegistry:
    """The loaded kinds; validates resources for spec writes and status writes."""

    def __init__(self, definitions: Iterable[KindDefinition] = ()) -> None:
        self._by_kind: dict[str, KindDefinition] = {}
        self._by_name: dict[str, KindDefinition] = {}
        clashes: list[str] = []
        for definition in definitions:
            if definition.kind in self._by_kind:
                clashes.append(f"{definition.source}: kind {definition.kind} is already defined")
                continue
            for name in definition.names():
                other = self._by_name.get(name)
                if other is not None and other is not definition:
                    clashes.append(f"{definition.source}: name {name!r} is already used by kind {other.kind}")
                self._by_name.setdefault(name, definition)
            self._by_kind[definition.kind] = definition
        if clashes:
            raise KindDefinitionError(f"{len(clashes)} clashing kind definitions", clashes)

    def __iter__(self) -> Iterator[KindDefinition]:
        return iter(self._by_kind.values())

    def __len__(self) -> int:
        return len(self._by_kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._by_kind

    @property
    def kinds(self) -> list[str]:
        return sorted(self._by_kind)

    def get(self, kind: str) -> KindDefinition:
        """The definition of `kind` (exact name, as in a resource's `kind` field)."""
        definition = self._by_kind.get(kind)
        if definition is None:
            raise UnknownKind(f"unknown kind {kind!r}; known kinds: {', '.join(self.kinds) or 'none'}")
        return definition

    def resolve(self, name: str) -> KindDefinition:
        """The definition for a name typed on the command line: kind, plural or short name, any case."""
        definition = self._by_name.get(name.lower())
        if definition is None:
            known = ", ".join(f"{d.kind} ({'/'.join(d.names()[1:])})" for d in self) or "none"
            raise UnknownKind(f"unknown kind {name!r}; known kinds: {known}")
        return definition

    def parse(self, document: Any) -> Resource:
        """Validate a resource document for a spec write and return it as a `Resource` (status dropped).

        Raises `UnknownKind`, `InvalidResource` (listing every violation) or `ResourceTooLarge`.
        """
        if not isinstance(document, Mapping):
            raise InvalidResource("a resource must be a mapping", [f"got {type(document).__name__}"])
        kind = document.get("kind")
        if not isinstance(kind, str) or not kind:
            raise InvalidResource("the resource names no kind", ["kind: a kind is required, e.g. kind: GitSource"])
        definition = self.get(kind)
        violations = _violations(_ENVELOPE_VALIDATOR.iter_errors(document), root="")
        if document.get("apiVersion") != definition.api_version:
            violations.append(f"apiVersion: {kind} is {definition.api_version!r}, got {document.get('apiVersion')!r}")
        if "spec" in document:
            violations.extend(definition.spec_violations(document["spec"]))
        metadata = document.get("metadata")
        if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
            namespace = metadata.get("namespace") or "default"
            if isinstance(namespace, str):
                violations.extend(name_violations(kind, namespace, metadata["name"]))
        if violations:
            summary = f"{kind} {_name_of(document)} is invalid; nothing was stored"
            ordered = sorted(dict.fromkeys(violations), key=lambda violation: violation.split(": ", 1)[0])
            raise InvalidResource(summary, ordered)
        resource = Resource.from_dict({**document, "status": {}})
        encode_items(resource)  # refuses what Nomad would refuse for size, before anything is sent
        return resource

    def check_status(self, resource: Resource, status: Any) -> None:
        """Validate a status write against the kind's status schema; `InvalidResource` lists every violation."""
        violations = self.get(resource.kind).status_violations(status)
        if violations:
            raise InvalidResource(f"status of {resource.key} is invalid; nothing was stored", violations)


def load_kinds(directory: Path | str) -> KindRegistry:
    """Load every `*.yaml` / `*.yml` kind file in `directory`; `KindDefinitionError` lists every problem found."""
    folder = Path(directory)
    if not folder.is_dir():
        raise KindDefinitionError(f"cannot load kinds from {folder}", [f"{folder}: not a directory"])
    definitions: list[KindDefinition] = []
    problems: list[str] = []
    for path in sorted(p for p in folder.iterdir() if p.suffix in KIND_FILE_SUFFIXES and p.is_file()):
        definition, file_problems = _load_kind_file(path)
        problems.extend(file_problems)
        if definition is not None:
            definitions.append(definition)
    if problems:
        raise KindDefinitionError(f"{len(problems)} problems in the kind files in {folder}", problems)
    return KindRegistry(definitions)


def _load_kind_file(path: Path) -> tuple[KindDefinition | None, list[str]]:
    if path.stat().st_size > KIND_FILE_MAX_BYTES:
        return None, [f"{path.name}: larger than KIND_FILE_MAX_BYTES={KIND_FILE_MAX_BYTES}"]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        return None, [f"{path.name}: not valid YAML: {' '.join(str(error).split())}"]
    if not isinstance(data, dict):
        return None, [f"{path.name}: a kind file must be a mapping, got {type(data).__name__}"]
    problems = [f"{path.name}: {v}" for v in _violations(_KIND_FILE_VALIDATOR.iter_errors(data), root="")]
    raw_schemas = data.get("schema")
    schemas: dict[str, Any] = raw_schemas if isinstance(raw_schemas, dict) else {}
    for part in ("spec", "status"):
        schema = schemas.get(part)
        if isinstance(schema, dict):
            found = _violations(_META_VALIDATOR.iter_errors(schema), root=f"schema.{part}")
            problems.extend(f"{path.name}: not a valid JSON Schema (2020-12): {v}" for v in found)
            if schema.get("type", "object") != "object":
                problems.append(f"{path.name}: schema.{part}.type must be 'object', got {schema.get('type')!r}")
    if problems:
        return None, problems
    columns = tuple(
        PrinterColumn(column["name"], column["path"], column.get("type", "string"))
        for column in data.get("printerColumns", ())
    )
    definition = KindDefinition(
        api_version=data["apiVersion"],
        kind=data["kind"],
        plural=data["plural"],
        short_names=tuple(data.get("shortNames", ())),
        spec_schema=schemas["spec"],
        status_schema=schemas.get("status", _DEFAULT_STATUS_SCHEMA),
        printer_columns=columns,
        description=data.get("description", ""),
        source=path.name,
    )
    return definition, []


def _violations(errors: Iterable[ValidationError], *, root: str) -> list[str]:
    """One line per violation, `path: message`, in document order; nested `anyOf`/`oneOf` failures stay one line."""
    lines: list[tuple[str, str]] = []
    for error in errors:
        location = root
        for part in error.absolute_path:
            location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
        message = error.message
        if len(message) > VIOLATION_MESSAGE_MAX_LENGTH:
            message = message[: VIOLATION_MESSAGE_MAX_LENGTH - 1] + "…"
        lines.append((location, message))
    return [f"{location or '(document)'}: {message}" for location, message in sorted(lines)]


def _name_of(document: Mapping[str, Any]) -> str:
    metadata = document.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        return f"{metadata.get('namespace') or 'default'}/{metadata['name']}"
    return "(unnamed)"
