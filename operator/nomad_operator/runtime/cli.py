"""`nomad-operator apply | get | delete`: custom resources from the command line, kubectl-style.

People write GitSources and other resources as YAML files and read them back as tables; the store (`resource_store`)
does the work, this module turns files and flags into calls and answers into text. The hazards are all about input:

- **A file with one bad document among several** writes nothing: every document is validated first, and every
  problem of every document is printed (with its file and position) before any write is made.
- **Lost races** are not errors for the user: a write that loses a compare-and-swap is re-read and decided again a few
  times, unless the file itself pinned a `resourceVersion` (then the conflict is the answer).
- **Clear errors and exit codes**: 0 done; 1 refused (invalid or unknown kind, not found, conflict); 2 the command
  cannot run (bad arguments, unreadable file, broken kind files, bad NOMAD_* settings); 3 Nomad unreachable or failing.

Nomad is found through the same NOMAD_* variables as the nomad CLI; kinds come from `--crds` (default
$NOMAD_OPERATOR_CRDS, else `./crds`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

import yaml

from nomad_operator.nomad import APIError, ConfigurationError, NomadClient, NomadError, NomadSettings
from nomad_operator.runtime.defaults import DEFAULT_NAMESPACE
from nomad_operator.runtime.errors import (
    InvalidResource,
    KindDefinitionError,
    ResourceTooLarge,
    UnknownKind,
)
from nomad_operator.runtime.kinds import KindDefinition, KindRegistry, load_kinds
from nomad_operator.runtime.resource_store import ResourceConflict, ResourceNotFound, ResourceStore
from nomad_operator.runtime.resources import Resource

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOMAD: Final = 3
CONFLICT_ATTEMPTS: Final = 4
"""A write that loses a compare-and-swap is re-read and tried again up to this many times in all."""
APPLY_FILE_MAX_BYTES: Final = 4 * 1024 * 1024
"""A resource file larger than this is refused unread (a resource fits in 64 KiB)."""
CRDS_ENV: Final = "NOMAD_OPERATOR_CRDS"
DEFAULT_CRDS_DIR: Final = "crds"
OUTPUT_FORMATS: Final = ("table", "yaml", "json")

T = TypeVar("T")


class CommandFailed(Exception):
    """Ends a command with a message on stderr and an exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--crds",
        metavar="DIR",
        default=None,
        help=f"folder of the kind files (default ${CRDS_ENV}, else ./{DEFAULT_CRDS_DIR})",
    )
    apply = subparsers.add_parser(
        "apply",
        parents=[common],
        help="create or update custom resources from YAML files",
        description="Create or update the resources in FILE (one or many YAML documents). Every document is "
        "validated first; if any is invalid, nothing is written. Prints `<kind>/<name> created|configured|unchanged`.",
    )
    apply.add_argument("-f", "--filename", action="append", required=True, metavar="FILE", help="YAML file, or -")
    apply.set_defaults(handler=apply_command)

    get = subparsers.add_parser(
        "get",
        parents=[common],
        help="list or show custom resources",
        description="Show the resources of KIND (kind, plural or short name), or the one named NAME.",
    )
    get.add_argument("kind", metavar="KIND")
    get.add_argument("name", metavar="NAME", nargs="?")
    get.add_argument("-n", "--namespace", default=None, help=f"resource namespace (default {DEFAULT_NAMESPACE})")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="list resources of every namespace")
    get.add_argument("-o", "--output", choices=OUTPUT_FORMATS, default="table", help="output format (default table)")
    get.set_defaults(handler=get_command)

    delete = subparsers.add_parser(
        "delete",
        parents=[common],
        help="delete a custom resource",
        description="Delete the resource; one that still has finalizers is only marked, and goes once they are done.",
    )
    delete.add_argument("kind", metavar="KIND")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("-n", "--namespace", default=DEFAULT_NAMESPACE, help=f"default {DEFAULT_NAMESPACE}")
    delete.set_defaults(handler=delete_command)


# --- handlers ---
def apply_command(args: argparse.Namespace) -> int:
    return _run(args, _apply)


def get_command(args: argparse.Namespace) -> int:
    return _run(args, _get)


def delete_command(args: argparse.Namespace) -> int:
    return _run(args, _delete)


def _run(
    args: argparse.Namespace, command: Callable[[argparse.Namespace, KindRegistry], Coroutine[Any, Any, int]]
) -> int:
    try:
        kinds = _load_kinds(args.crds)
        return asyncio.run(command(args, kinds))
    except CommandFailed as failure:
        print(f"error: {failure}", file=sys.stderr)
        return failure.exit_code


def _load_kinds(option: str | None) -> KindRegistry:
    folder = Path(option or os.environ.get(CRDS_ENV, "").strip() or DEFAULT_CRDS_DIR)
    try:
        return load_kinds(folder)
    except KindDefinitionError as error:
        raise CommandFailed(f"cannot load the kinds: {error}", EXIT_USAGE) from None


async def _with_store(kinds: KindRegistry, work: Callable[[ResourceStore], Awaitable[T]]) -> T:
    try:
        settings = NomadSettings.from_env()
    except ConfigurationError as error:
        raise CommandFailed(str(error), EXIT_USAGE) from None
    try:
        async with NomadClient(settings) as nomad:
            return await work(ResourceStore(nomad, kinds))
    except ConfigurationError as error:
        raise CommandFailed(str(error), EXIT_USAGE) from None
    except APIError as error:
        raise CommandFailed(f"Nomad answered {error.status}: {error.message}", EXIT_NOMAD) from None
    except NomadError as error:
        raise CommandFailed(f"cannot reach Nomad at {settings.address}: {error}", EXIT_NOMAD) from None


# --- apply ---
async def _apply(args: argparse.Namespace, kinds: KindRegistry) -> int:
    documents = [document for name in args.filename for document in _read_documents(name)]
    problems: list[str] = []
    for where, document in documents:
        try:
            kinds.parse(document)
        except (InvalidResource, UnknownKind, ResourceTooLarge) as error:
            problems.append(f"{where}: {error}")
    if problems:
        raise CommandFailed(
            "nothing was applied; fix these and apply again:\n" + "\n".join(problems), EXIT_REFUSED
        ) from None
    if not documents:
        raise CommandFailed("no resources found in " + ", ".join(args.filename), EXIT_USAGE)

    async def apply_all(store: ResourceStore) -> int:
        failed = 0
        for where, document in documents:
            pinned = bool(document.get("metadata", {}).get("resourceVersion"))
            try:
                resource, outcome = await _retry_conflicts(partial(store.apply, document), retry=not pinned)
            except (ResourceConflict, InvalidResource) as error:
                print(f"error: {where}: {error}", file=sys.stderr)
                failed += 1
                continue
            print(f"{_display_name(resource)} {outcome.value}")
        return EXIT_REFUSED if failed else EXIT_OK

    return await _with_store(kinds, apply_all)


def _read_documents(name: str) -> list[tuple[str, Mapping[str, Any]]]:
    try:
        if name == "-":
            text = sys.stdin.read(APPLY_FILE_MAX_BYTES + 1)
        else:
            path = Path(name)
            if path.stat().st_size > APPLY_FILE_MAX_BYTES:
                raise CommandFailed(f"{name}: larger than {APPLY_FILE_MAX_BYTES} bytes; refused", EXIT_USAGE)
            text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandFailed(f"cannot read {name}: {error}", EXIT_USAGE) from None
    if len(text) > APPLY_FILE_MAX_BYTES:
        raise CommandFailed(f"{name}: larger than {APPLY_FILE_MAX_BYTES} bytes; refused", EXIT_USAGE)
    try:
        loaded = [document for document in yaml.safe_load_all(text) if document is not None]
    except yaml.YAMLError as error:
        raise CommandFailed(f"{name} is not valid YAML: {' '.join(str(error).split())}", EXIT_USAGE) from None
    found: list[tuple[str, Mapping[str, Any]]] = []
    for number, document in enumerate(loaded, start=1):
        where = f"{name} (document {number})"
        if not isinstance(document, Mapping):
            raise CommandFailed(f"{where}: a resource must be a mapping, got {type(document).__name__}", EXIT_REFUSED)
        found.append((where, document))
    return found


async def _retry_conflicts(attempt: Callable[[], Awaitable[T]], *, retry: bool) -> T:
    for number in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return await attempt()
        except ResourceConflict:
            if not retry or number == CONFLICT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


# --- get ---
async def _get(args: argparse.Namespace, kinds: KindRegistry) -> int:
    definition = _resolve(kinds, args.kind)
    namespace = None if args.all_namespaces else (args.namespace or DEFAULT_NAMESPACE)

    async def read(store: ResourceStore) -> list[Resource]:
        if args.name is not None:
            return [await store.get(definition.kind, args.name, namespace=namespace or DEFAULT_NAMESPACE)]
        return await store.list(definition.kind, namespace=namespace)

    try:
        found = await _with_store(kinds, read)
    except ResourceNotFound as error:
        raise CommandFailed(str(error), EXIT_REFUSED) from None
    if not found:
        where = "any namespace" if namespace is None else f"namespace {namespace}"
        print(f"No {definition.plural} found in {where}.", file=sys.stderr)
        return EXIT_OK
    single = args.name is not None
    if args.output == "table":
        headers = ["NAME", "NAMESPACE", *(column.name.upper() for column in definition.printer_columns)]
        write_table(sys.stdout, headers, [definition.printer_row(resource) for resource in found])
    else:
        documents = [resource.to_dict() for resource in found]
        value: Any = documents[0] if single else {"apiVersion": "v1", "kind": "List", "items": documents}
        if args.output == "json":
            print(json.dumps(value, indent=2))
        else:
            print(yaml.safe_dump(value, sort_keys=False, allow_unicode=True), end="")
    return EXIT_OK


def write_table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns separated by three spaces, as kubectl prints them; newlines in cells become spaces."""
    cells = [[" ".join(str(cell).split()) for cell in row] for row in [list(headers), *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    for row in cells:
        out.write("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")


# --- delete ---
async def _delete(args: argparse.Namespace, kinds: KindRegistry) -> int:
    definition = _resolve(kinds, args.kind)

    async def delete(store: ResourceStore) -> Resource | None:
        return await _retry_conflicts(
            lambda: store.delete(definition.kind, args.name, namespace=args.namespace), retry=True
        )

    try:
        marked = await _with_store(kinds, delete)
    except ResourceNotFound as error:
        raise CommandFailed(str(error), EXIT_REFUSED) from None
    except ResourceConflict as error:
        raise CommandFailed(str(error), EXIT_REFUSED) from None
    label = f"{definition.kind.lower()}/{args.name}"
    if marked is None:
        print(f"{label} deleted")
    else:
        waiting = ", ".join(marked.metadata.finalizers)
        print(f"{label} marked for deletion; waiting for finalizers: {waiting}")
    return EXIT_OK


def _resolve(kinds: KindRegistry, name: str) -> KindDefinition:
    try:
        return kinds.resolve(name)
    except UnknownKind as error:
        raise CommandFailed(str(error), EXIT_REFUSED) from None


def _display_name(resource: Resource) -> str:
    label = f"{resource.kind.lower()}/{resource.metadata.name}"
    if resource.metadata.namespace != DEFAULT_NAMESPACE:
        label += f" (namespace {resource.metadata.namespace})"
    return label
