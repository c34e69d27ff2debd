"""Every default and limit of the Nomad access layer, as named constants in one place.

Timeouts, buffer sizes and retry bounds are easy to scatter as bare numbers through a client, and then nobody can say
what the client will do when Nomad is slow or gone. Keeping them here, each with the reason for its value, makes the
behaviour reviewable and lets tests and callers override a named thing instead of guessing a number.
"""

from __future__ import annotations

# --- where Nomad is (the nomad CLI's own defaults) ---
DEFAULT_ADDRESS = "http://127.0.0.1:4646"

# --- HTTP ---
# Nomad event lines and job JSON can be several MiB; aiohttp's 64 KiB default makes `readline` raise LineTooLong
# above 512 KiB, and small buffers mean many tiny reads on a fast stream.
READ_BUFSIZE = 4 * 1024 * 1024
CONNECT_TIMEOUT = 10.0
# Total time for an ordinary (non-blocking) request, including reading the body.
REQUEST_TIMEOUT = 60.0
# Nomad's own default wait when `index` is given without `wait`, and its cap (MaxBlockingRPCQueryTime).
BLOCKING_DEFAULT_WAIT = 300.0
# Nomad adds up to wait/16 of jitter to a blocking query; our read timeout must cover that plus the trip itself.
BLOCKING_JITTER_FRACTION = 1 / 16
BLOCKING_READ_MARGIN = 10.0
# A response body larger than this is refused rather than held in memory (the biggest real ones, job versions and
# allocation lists of a large cluster, stay far below it).
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
# Error bodies are plain text; a proxy may answer with a whole HTML page, which is cut to this for the exception.
MAX_ERROR_MESSAGE_CHARS = 500
MAX_ERROR_BODY_BYTES = 64 * 1024
USER_AGENT = "nomad-operator"

# --- paged lists (per_page / next_token) ---
# Objects per page when a list is read page by page: big enough that 10,000 allocations take 20 round trips, small
# enough that one page's JSON and its decoded dicts stay a few MB (the whole list at once is ~200 MB decoded).
DEFAULT_LIST_PAGE_SIZE = 500
# A paged list that goes on longer than this is refused: a server that hands out tokens in a cycle would otherwise
# keep the caller paging forever (200,000 objects at the default page size are 400 pages).
MAX_LIST_PAGES = 100_000

# --- retries of idempotent calls (tenacity, exponential with jitter) ---
RETRY_MAX_ATTEMPTS = 5
RETRY_MAX_TOTAL_SECONDS = 30.0
RETRY_INITIAL_DELAY = 0.1
RETRY_MAX_DELAY = 5.0
RETRY_JITTER = 0.5

# --- the event stream ---
# Nomad sends `{}` at connect and then every 30 s; 45 s of total silence means the connection is dead (half-open
# TCP, a proxy that swallowed it, a server that hung).
EVENT_STREAM_IDLE_TIMEOUT = 45.0
# Reconnect backoff: quick first retry, capped so a recovered server is noticed within seconds.
EVENT_STREAM_BACKOFF_INITIAL = 0.2
EVENT_STREAM_BACKOFF_MAX = 10.0
EVENT_STREAM_BACKOFF_JITTER = 0.5
# A connection that stayed up this long counts as healthy: the next failure starts the backoff from the beginning.
EVENT_STREAM_STABLE_AFTER = 30.0
# One event line is one raft batch; a plan placing thousands of allocations is a few tens of MiB at most.
EVENT_STREAM_MAX_LINE_BYTES = 64 * 1024 * 1024
# How much of a garbage line goes into the log: enough to recognise it, not enough to flood the log.
EVENT_STREAM_LOG_PREVIEW_BYTES = 160
DEFAULT_EVENT_NAMESPACE = "*"

# --- variable locks (Nomad's defaults and bounds) ---
LOCK_DEFAULT_TTL = 15.0
LOCK_DEFAULT_DELAY = 15.0
LOCK_MIN_TTL = 10.0
LOCK_MAX_TTL = 24 * 3600.0
