"""Every default and named limit of the GitOps sync, in one place.

A limit buried in a function is a limit nobody finds when it bites (DESIGN rule 7). The sync's safety rules are
numbers too: how long a job must have been gone from git before it may be pruned, what share of a source's jobs one
revision may prune, how many past syncs the status keeps. They are named here and quoted by the errors that hit them.
"""

from __future__ import annotations

from typing import Final

OWNER_META_PREFIX: Final = "nomad-operator."
META_SOURCE: Final = f"{OWNER_META_PREFIX}source"
META_REVISION: Final = f"{OWNER_META_PREFIX}revision"
META_PATH: Final = f"{OWNER_META_PREFIX}path"
META_SPEC_HASH: Final = f"{OWNER_META_PREFIX}spec-hash"
META_WAVE: Final = f"{OWNER_META_PREFIX}wave"
OWNER_META_KEYS: Final = (META_SOURCE, META_REVISION, META_PATH, META_SPEC_HASH)

DEFAULT_INTERVAL_SECONDS: Final = 60.0
DEFAULT_PRUNE_GRACE_SECONDS: Final = 300.0
"""A job must have been missing from git this long (seen missing in consecutive revisions) before it is stopped."""
DEFAULT_MAX_PRUNE_SHARE: Final = 0.5
"""No single revision may stop more than this share of a source's owned jobs unless the source says `force`."""
DEFAULT_ALLOWED_NAMESPACES: Final = ("default",)
DEFAULT_WAVE_TIMEOUT_SECONDS: Final = 600.0
"""How long a wave may take to become healthy before the sync stops and says which jobs held it up."""
WAVE_POLL_SECONDS: Final = 0.25
DEFAULT_WAVE: Final = 0

SYNC_HISTORY_LENGTH: Final = 10
MAX_ERROR_CHARS: Final = 2000
MAX_FILE_ERRORS_IN_STATUS: Final = 50
MAX_CONFLICT_RETRIES: Final = 3
"""A register that loses its EnforceIndex race is re-read and decided again at most this often in one sync."""
MAX_WRITE_ATTEMPTS: Final = 4
"""Attempts of one write that failed with a transient error (5xx, unreachable) within one sync."""
WRITE_RETRY_BASE_SECONDS: Final = 0.05
APPLY_CONCURRENCY: Final = 8
"""Writes in flight at once for one source: a Raspberry Pi cluster should not see a thousand registers at once."""
HEALTH_CONCURRENCY: Final = 8
FETCH_RETRY_BASE_SECONDS: Final = 1.0
FETCH_RETRY_MAX_SECONDS: Final = 300.0
REDACTED: Final = "<redacted>"
