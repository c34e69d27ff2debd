"""The sources one operator process serves, each with its running loop: found by webhook name, by job, or all at once.

In single-source mode the set holds one source for the life of the process; in resource mode GitSource resources come
and go, and each change of spec replaces a source's loop. Everything that wakes sources (webhooks, job events, a new
leadership term, the node controller) goes through this set, so the hazards are handled once:
- **a loop that dies** (a bug in a cycle is caught inside the loop; anything else) is logged and restarted by
  `ensure_running`, never left silently dead;
- **stopping** cancels a loop and waits for it, so a replaced source never writes after its successor started;
- **webhook names** are the resource name (namespace `default`), or `namespace:name` for any namespace, so a hook
  URL stays a single path segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from nomad_operator.controllers.gitops.desired_state import JobKey
from nomad_operator.controllers.gitops.owner_meta import owner_of, source_id
from nomad_operator.controllers.gitops.source_sync import GitSourceSync
from nomad_operator.server.webhooks import SecretGetter, StaticSecret, WebhookSource

log = logging.getLogger(__name__)

DEFAULT_SOURCE_NAMESPACE: Final = "default"
WEBHOOK_NAMESPACE_SEPARATOR: Final = ":"


@dataclass
class ServedSource:
    """A source, where its webhook secret comes from, and its loop task."""

    sync: GitSourceSync
    secret: SecretGetter = field(default_factory=lambda: StaticSecret(None))
    task: asyncio.Task[None] | None = None

    @property
    def source_id(self) -> str:
        return self.sync.spec.source_id


class SourceSet:
    """Sources by `namespace/name`; `WebhookSources` for the receiver; wake-ups by job or for all."""

    def __init__(self) -> None:
        self._served: dict[str, ServedSource] = {}

    def __iter__(self) -> Iterator[GitSourceSync]:
        return iter([served.sync for served in self._served.values()])

    def __len__(self) -> int:
        return len(self._served)

    def get(self, source: str) -> ServedSource | None:
        return self._served.get(source)

    def served(self) -> list[ServedSource]:
        return list(self._served.values())

    # --- membership -------------------------------------------------------------------------------------------
    def add(self, served: ServedSource, *, start: bool = True) -> None:
        if served.source_id in self._served:
            raise ValueError(f"source {served.source_id} is already served; stop it first")
        self._served[served.source_id] = served
        if start:
            self._start(served)

    async def remove(self, source: str) -> ServedSource | None:
        """Stop the source's loop (waiting for it) and forget it."""
        served = self._served.pop(source, None)
        if served is not None:
            await _stop(served)
        return served

    async def stop_all(self) -> None:
        for served in list(self._served.values()):
            await _stop(served)

    def ensure_running(self) -> None:
        """Restart any loop that ended (it never should: its cycles catch their own errors)."""
        for served in self._served.values():
            task = served.task
            if task is not None and task.done() and not task.cancelled():
                error = task.exception()
                log.error("%s: the source loop ended (%r); restarting it", served.source_id, error)
                self._start(served)

    def _start(self, served: ServedSource) -> None:
        served.task = asyncio.create_task(served.sync.run(), name=f"gitsource-{served.source_id}")

    # --- wake-ups ---------------------------------------------------------------------------------------------
    def request_all(self, *, reason: str) -> None:
        for served in self._served.values():
            served.sync.request(reason=reason)

    def owners(self, key: JobKey, job: Any = None) -> list[GitSourceSync]:
        """Sources that own or want the job: from its owner meta, else from what each source wants or reported."""
        mark = owner_of(job) if isinstance(job, Mapping) else None
        found: list[GitSourceSync] = []
        for served in self._served.values():
            sync = served.sync
            desired = sync.desired
            if (
                (mark is not None and mark.source == served.source_id)
                or key in sync.status.jobs
                or (desired is not None and key in desired.jobs)
            ):
                found.append(sync)
        return found

    # --- webhooks ---------------------------------------------------------------------------------------------
    def find(self, name: str) -> ServedSource | None:
        """The source a hook URL names: `name` (namespace default, else the only source of that name) or `ns:name`."""
        namespace, sep, short = name.partition(WEBHOOK_NAMESPACE_SEPARATOR)
        if sep:
            return self._served.get(source_id(namespace, short))
        served = self._served.get(source_id(DEFAULT_SOURCE_NAMESPACE, name))
        if served is not None:
            return served
        matches = [s for s in self._served.values() if s.sync.spec.name == name]
        return matches[0] if len(matches) == 1 else None

    def lookup(self, name: str) -> WebhookSource | None:
        served = self.find(name)
        if served is None:
            return None
        return WebhookSource(name=name, ref=served.sync.spec.ref, secret=served.secret)

    def documents(self) -> dict[str, dict[str, Any]]:
        """The latest status document of every source (what `/status` serves)."""
        return {served.source_id: served.sync.last_document for served in self._served.values()
                if served.sync.last_document is not None}  # fmt: skip


async def _stop(served: ServedSource) -> None:
    task, served.task = served.task, None
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
