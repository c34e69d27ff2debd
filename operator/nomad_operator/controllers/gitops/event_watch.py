"""Events on owned jobs wake their source: drift and health follow the cluster, not the poll timer.

A hand edit of a job, a failed deployment or a lost allocation should show in the source's status (and be healed)
within a second, not at the next poll. The watch follows Nomad's event stream for Job, Deployment, Allocation and
Evaluation events and asks the owning source for a cycle; which source owns a job is read from the Job event's owner
meta, or from the source's last inventory for the other topics. It never carries state into the cycle: the cycle
reads Nomad again (level-based), so a missed or replayed event costs nothing but a later wake-up. A stream reset
wakes every source, since events may have been missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from nomad_operator.controllers.gitops.desired_state import JobKey
from nomad_operator.controllers.gitops.owner_meta import owner_of
from nomad_operator.controllers.gitops.source_sync import EVENT_REASON, GitSourceSync
from nomad_operator.nomad import EventBatch, NomadClient, NomadError, StreamReset

log = logging.getLogger(__name__)

TOPICS = {"Job": ["*"], "Deployment": ["*"], "Allocation": ["*"], "Evaluation": ["*"]}
RESTART_DELAY_SECONDS = 1.0


def job_key_of(topic: str, obj: Mapping[str, object], namespace: str) -> JobKey | None:
    job_id = obj.get("ID") if topic == "Job" else obj.get("JobID")
    if not isinstance(job_id, str) or not job_id:
        return None
    return (namespace or str(obj.get("Namespace") or "default"), job_id)


class EventWatch:
    """Maps cluster events to the sources that own the jobs they are about."""

    def __init__(self, nomad: NomadClient, sources: Callable[[], list[GitSourceSync]]) -> None:
        self._nomad = nomad
        self._sources = sources
        self.wakeups = 0

    def owners(self, topic: str, obj: Mapping[str, object], namespace: str) -> list[GitSourceSync]:
        key = job_key_of(topic, obj, namespace)
        if key is None:
            return []
        sources = self._sources()
        if topic == "Job":
            mark = owner_of(obj)
            if mark is not None:
                return [s for s in sources if s.spec.source_id == mark.source]
        return [s for s in sources if key in s.status.jobs]

    def handle(self, item: EventBatch | StreamReset) -> None:
        if isinstance(item, StreamReset):
            for source in self._sources():
                source.request(reason=EVENT_REASON)
            return
        woken: set[str] = set()
        for event in item.events:
            obj = event.object
            if obj is None:
                continue
            for source in self.owners(event.topic, obj, event.namespace):
                if source.spec.source_id not in woken:
                    woken.add(source.spec.source_id)
                    source.request(reason=EVENT_REASON)
        self.wakeups += len(woken)

    async def run(self) -> None:
        while True:
            try:
                index = (await self._nomad.list_jobs()).index
                async for item in self._nomad.event_stream(TOPICS, after_index=index, namespace="*"):
                    self.handle(item)
            except asyncio.CancelledError:
                raise
            except NomadError as exc:
                log.warning("event watch: %s; restarting", exc)
            await asyncio.sleep(RESTART_DELAY_SECONDS)
