"""Nomad access: the async HTTP client for the Nomad API and the event-stream reader.

Everything the rest of the operator needs from Nomad comes through here, so this layer owns the hazards of talking to
it: plain-text errors with loose status codes (mapped to one exception tree in `errors`), blocking queries, retries
that are only safe for idempotent calls, a write guard so that only the elected leader writes, tokens that rotate, and
an event stream that replays, skips and dies silently unless it is watched. It imports nothing of ours above it.
"""

from nomad_operator.nomad.client import NomadClient
from nomad_operator.nomad.errors import (
    APIError,
    BadRequest,
    ConfigurationError,
    Conflict,
    InvalidResponse,
    NomadError,
    NomadUnreachable,
    NotFound,
    NotLeader,
    PermissionDenied,
    ServerError,
    StreamProtocolError,
    TooManyRequests,
    WriteRefused,
)
from nomad_operator.nomad.event_protocol import Event, EventBatch, StreamCursor, StreamReset, TopicSpec
from nomad_operator.nomad.events import EventStream
from nomad_operator.nomad.jobs_api import job_path
from nomad_operator.nomad.list_pages import PageOptions
from nomad_operator.nomad.results import JobWriteResult, JSONObject, QueryResult
from nomad_operator.nomad.retry import DEFAULT_BACKOFF, DEFAULT_RETRY, NO_RETRY, Backoff, RetryPolicy
from nomad_operator.nomad.settings import NomadSettings
from nomad_operator.nomad.transport import CallOptions, ListOptions, ReadOptions
from nomad_operator.nomad.variables_api import lock_id_of, variable_path
from nomad_operator.nomad.write_guard import WriteGuard

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_RETRY",
    "NO_RETRY",
    "APIError",
    "Backoff",
    "BadRequest",
    "CallOptions",
    "ConfigurationError",
    "Conflict",
    "Event",
    "EventBatch",
    "EventStream",
    "InvalidResponse",
    "JSONObject",
    "JobWriteResult",
    "ListOptions",
    "NomadClient",
    "NomadError",
    "NomadSettings",
    "NomadUnreachable",
    "NotFound",
    "NotLeader",
    "PageOptions",
    "PermissionDenied",
    "QueryResult",
    "ReadOptions",
    "RetryPolicy",
    "ServerError",
    "StreamCursor",
    "StreamProtocolError",
    "StreamReset",
    "TooManyRequests",
    "TopicSpec",
    "WriteGuard",
    "WriteRefused",
    "job_path",
    "lock_id_of",
    "variable_path",
]
