"""The seam through which leader election stops a replica from writing to Nomad.

Three replicas run the operator; only the one holding the leader lock may change the cluster, and one that loses the
lock must stop writing at once, even with requests already decided. The client therefore asks a `WriteGuard` before
every attempt of every state-changing call (a retry after a pause is asked again: leadership may have ended
meanwhile). The guard raises to refuse, and nothing is sent.

The variable-lock calls of leader election itself (acquire, renew, release) are exempt: a guard that refused them
could never let anyone become leader. Reads, plans and parses change nothing and are never guarded.
"""

from __future__ import annotations

from typing import Protocol


class WriteGuard(Protocol):
    """Decides whether this process may send a write. Raise `WriteRefused` (or `NotLeader`) to refuse it."""

    def check_write(self, method: str, path: str) -> None: ...
