"""`NomadClient`: the one async client of the Nomad API that the operator uses, and its event-stream factory.

The API is split by area into `jobs_api`, `cluster_api` and `variables_api`, all built on `transport.NomadTransport`
(the session, retries, errors, write guard); this class puts them together so callers hold a single object:

    async with NomadClient(NomadSettings.from_env(), write_guard=elector) as nomad:
        jobs = await nomad.list_jobs()
        async for item in nomad.event_stream({"Job": ["*"]}, after_index=jobs.index):
            ...
"""

from __future__ import annotations

from nomad_operator.nomad.cluster_api import ClusterAPI
from nomad_operator.nomad.defaults import (
    DEFAULT_EVENT_NAMESPACE,
    EVENT_STREAM_IDLE_TIMEOUT,
    EVENT_STREAM_MAX_LINE_BYTES,
)
from nomad_operator.nomad.event_protocol import TopicSpec
from nomad_operator.nomad.events import EventStream
from nomad_operator.nomad.jobs_api import JobsAPI
from nomad_operator.nomad.retry import DEFAULT_BACKOFF, Backoff
from nomad_operator.nomad.variables_api import VariablesAPI


class NomadClient(JobsAPI, ClusterAPI, VariablesAPI):
    """An async Nomad API client on one aiohttp session; use it as an async context manager.

    Options (all keyword-only): `write_guard` (asked before every write; see `WriteGuard`), `retry` (`RetryPolicy`
    for idempotent calls; `NO_RETRY` turns retries off), `request_timeout`, `connect_timeout`, `read_bufsize`,
    `max_response_bytes`.
    """

    def event_stream(
        self,
        topics: TopicSpec,
        *,
        after_index: int = 0,
        namespace: str = DEFAULT_EVENT_NAMESPACE,
        idle_timeout: float = EVENT_STREAM_IDLE_TIMEOUT,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_line_bytes: int = EVENT_STREAM_MAX_LINE_BYTES,
    ) -> EventStream:
        """An `EventStream` over this client's session: batches with an index above `after_index` (pass the
        `X-Nomad-Index` of the list it follows), across reconnects."""
        return EventStream(
            self,
            topics,
            after_index=after_index,
            namespace=namespace,
            idle_timeout=idle_timeout,
            backoff=backoff,
            max_line_bytes=max_line_bytes,
        )
