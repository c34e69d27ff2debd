"""The runtime's one exception tree.

Callers (the Operator, the CLI, the HTTP server) need to tell "you gave me bad input" from "a limit was hit" from "the
runtime is shutting down" without parsing messages. Every error the runtime raises on purpose derives from
`OperatorRuntimeError`; messages name the offending key, kind or file and, for limits, the limit's name and value, so
the error is actionable from a log line alone.

`TerminalError`, which reconcilers raise to stop retries, is not here: it is part of the reconciler API
(`nomad_operator.runtime.reconciler`).
"""

from __future__ import annotations

from collections.abc import Sequence


class OperatorRuntimeError(Exception):
    """Base of every error that the runtime raises on purpose."""


# --- work queue -------------------------------------------------------------------------------------------------------
class QueueShutDown(OperatorRuntimeError):
    """The queue was shut down: `get()` has nothing more to hand out."""


class QueueEmpty(OperatorRuntimeError):
    """`get_nowait()` found no key ready to hand out."""


class QueueFull(OperatorRuntimeError):
    """Adding a key would exceed the queue's named limit on distinct keys."""


class QueueMisuse(OperatorRuntimeError):
    """The queue protocol was broken, e.g. `done(key)` for a key that is not being processed."""


# --- cache ------------------------------------------------------------------------------------------------------------
class CacheFull(OperatorRuntimeError):
    """Storing an object would exceed the cache's named per-kind limit."""


class UncachedKind(OperatorRuntimeError):
    """The cache was asked about a kind that no controller declared."""


class UnidentifiableObject(OperatorRuntimeError):
    """An object lacks the fields (ID, Namespace, metadata.name, ...) that identify it."""


# --- custom-resource kinds --------------------------------------------------------------------------------------------
class ViolationsError(OperatorRuntimeError):
    """An error that carries every violation found, not just the first, so one round trip fixes them all."""

    def __init__(self, summary: str, violations: Sequence[str]) -> None:
        self.summary = summary
        self.violations: tuple[str, ...] = tuple(violations)
        lines = [summary, *(f"  - {violation}" for violation in self.violations)]
        super().__init__("\n".join(lines))


class KindDefinitionError(ViolationsError):
    """One or more kind files in `crds/` are unreadable, malformed or contradict each other."""


class UnknownKind(OperatorRuntimeError):
    """A resource names a kind that no file in `crds/` defines."""


class InvalidResource(ViolationsError):
    """A resource breaks its kind's schema, the metadata rules or the naming rules; nothing was stored."""


class ResourceTooLarge(OperatorRuntimeError):
    """A resource does not fit in one Nomad Variable (64 KiB of items)."""


class UndecodableVariable(OperatorRuntimeError):
    """A Nomad Variable under the resource prefix does not hold a resource we can read."""
