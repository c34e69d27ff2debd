"""Flap damping: a node that keeps going down is held ineligible until it has been stable, within a capacity budget.

Nomad reschedules work off a node that goes down and lets the node take new work the moment it is back, so a node
with a bad power supply pulls allocations back and forth on every cycle. The rule here, precisely:

- A *flap* is a transition of a node into `down` or `disconnected` from any other status (the first time a node is
  seen, it is not a transition). Counting downs rather than returns lets the hold start at the N-th down, so the
  node is already ineligible when it comes back the N-th time.
- A node that flapped at least `flap_threshold` (N) times within `flap_window` (M) is *held*: made ineligible, if it
  is eligible and not draining (an ineligible or draining node belongs to a person, and is never touched).
- A held node is *released* (made eligible again) once it has been `ready` for `stable_for` (S) without a new flap;
  its flaps up to the release are forgiven, so it is not held again at once for the same history.
- **Budget.** A cluster is *small* when it has at most `SMALL_CLUSTER_MAX_NODES` (5) nodes, the sizes of a Nomad
  quorum. Its budget is one node (none for a single-node cluster); a larger cluster's budget is
  `floor(nodes * large_cluster_held_fraction)`, at least one. Two limits hold at every decision:
  1. held nodes ≤ budget, so a small cluster never has two nodes held at once;
  2. a held node that is ready is capacity withheld by this rule. Withheld nodes plus the *failed* nodes (not held
     by us, and not ready-eligible-undrained: down, initializing, drained, made ineligible by a person) ≤ budget.
     When another node fails, held nodes are released at once, ready ones first, so the rule never makes capacity
     worse than the failure did: a flapping node is better than no node.
- A held node found eligible after the hold was seen applied was released by a person: the hold is dropped and
  its flaps are forgiven, never fought over.

Pure logic: times are passed in (seconds on any monotonic or wall clock, used consistently); the controller applies
the decisions with `set_node_eligibility` and confirms them here only after Nomad accepted the write.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from nomad_operator.controllers.nodes.cluster_view import NODE_READY, NodeView
from nomad_operator.controllers.nodes.defaults import FLAP_HISTORY_MAX_DOWNS, SMALL_CLUSTER_MAX_NODES
from nomad_operator.controllers.nodes.policy import NodePolicy

RELEASE_STABLE: Final = "Stable"
RELEASE_CAPACITY: Final = "CapacityNeeded"
RELEASE_DISABLED: Final = "DampingDisabled"
RELEASE_OVERRIDDEN: Final = "ReleasedByPerson"
RELEASE_DEREGISTERED: Final = "NodeDeregistered"


def hold_budget(node_count: int, policy: NodePolicy) -> int:
    """How many nodes flap damping may hold at once in a cluster of `node_count` nodes."""
    if node_count <= 1:
        return 0
    if node_count <= SMALL_CLUSTER_MAX_NODES:
        return 1
    return max(1, math.floor(node_count * policy.large_cluster_held_fraction))


@dataclass(frozen=True, slots=True)
class Hold:
    """A node held ineligible by flap damping. `applied` turns True once the node was seen ineligible."""

    node_id: str
    node_name: str
    since: float
    flaps: int
    reason: str
    applied: bool = False


@dataclass(frozen=True, slots=True)
class Release:
    """A hold to end. `write` says whether to make the node eligible (False: it is gone, or a person did it)."""

    node_id: str
    node_name: str
    reason: str
    message: str
    write: bool = True

    @property
    def forgives(self) -> bool:
        """Whether the node's flaps so far are forgotten. Not after an early release for capacity: the node is still
        unstable, and is held again once the other failure is over."""
        return self.reason != RELEASE_CAPACITY


@dataclass(frozen=True, slots=True)
class FlapDecision:
    hold: tuple[Hold, ...] = ()
    release: tuple[Release, ...] = ()
    deferred: tuple[str, ...] = ()  # flapping nodes not held, with why, for the log and the status
    recheck_after: float | None = None  # seconds until a held node may be stable; None when nothing is pending


@dataclass(slots=True)
class _History:
    status: str
    downs: deque[float] = field(default_factory=lambda: deque(maxlen=FLAP_HISTORY_MAX_DOWNS))
    ready_since: float | None = None


class FlapDamper:
    """Per-node flap history and the holds; `decide` says what to hold and release now."""

    def __init__(self) -> None:
        self._history: dict[str, _History] = {}
        self._held: dict[str, Hold] = {}
        # Nodes this damper released whose eligibility the cache has not shown yet: not failures of their own.
        self._releasing: set[str] = set()

    # --- observations ---------------------------------------------------------------------------------------------
    def observe(self, node: NodeView, *, at: float) -> bool:
        """Record the node's current status; True when this observation is a new flap."""
        history = self._history.get(node.id)
        flapped = False
        if history is None:
            history = self._history[node.id] = _History(status=node.status)
            history.ready_since = at if node.status == NODE_READY else None
        elif node.status != history.status:
            if node.gone and history.status not in ("down", "disconnected"):
                history.downs.append(at)
                flapped = True
            history.ready_since = at if node.status == NODE_READY else None
            history.status = node.status
        hold = self._held.get(node.id)
        if hold is not None and not hold.applied and not node.eligible:
            self._held[node.id] = replace(hold, applied=True)
        if node.eligible:
            self._releasing.discard(node.id)
        return flapped

    def flaps(self, node_id: str, *, now: float, window: float) -> int:
        history = self._history.get(node_id)
        if history is None:
            return 0
        return sum(1 for at in history.downs if now - window <= at <= now)

    def ready_for(self, node_id: str, *, now: float) -> float | None:
        """Seconds the node has been ready without a flap, or None when it is not ready."""
        history = self._history.get(node_id)
        if history is None or history.ready_since is None:
            return None
        return max(0.0, now - history.ready_since)

    def forget(self, node_id: str) -> None:
        self._history.pop(node_id, None)
        self._held.pop(node_id, None)
        self._releasing.discard(node_id)

    # --- holds ----------------------------------------------------------------------------------------------------
    @property
    def held(self) -> dict[str, Hold]:
        return dict(self._held)

    def restore(self, holds: Iterable[Hold]) -> None:
        """Adopt holds recorded by a previous leader (they were applied: that leader confirmed them)."""
        for hold in holds:
            self._held[hold.node_id] = replace(hold, applied=True)

    def confirm_hold(self, hold: Hold) -> None:
        self._held[hold.node_id] = hold

    def confirm_release(self, node_id: str, *, at: float, forgive: bool = True) -> None:
        """The hold ended; with `forgive`, the flaps up to now are forgotten."""
        if self._held.pop(node_id, None) is not None:
            self._releasing.add(node_id)
        history = self._history.get(node_id)
        if history is not None and forgive:
            history.downs = deque((t for t in history.downs if t > at), maxlen=FLAP_HISTORY_MAX_DOWNS)

    # --- the decision ---------------------------------------------------------------------------------------------
    def decide(self, nodes: Sequence[NodeView], *, now: float, policy: NodePolicy) -> FlapDecision:
        by_id = {node.id: node for node in nodes}
        held = dict(self._held)
        releases: list[Release] = []

        releasing = set(self._releasing)

        def release(node_id: str, reason: str, message: str, *, write: bool = True) -> None:
            hold = held.pop(node_id)
            releases.append(Release(node_id, hold.node_name, reason, message, write))
            if write:
                releasing.add(node_id)

        def failed(node: NodeView) -> bool:
            """Unavailable for a reason of its own: not held by us, and not ready, eligible and undrained."""
            if node.id in held:
                return False
            eligible = node.eligible or node.id in releasing
            return not (node.ready and eligible and not node.draining)

        for node_id, hold in sorted(held.items()):
            node = by_id.get(node_id)
            if node is None:
                release(node_id, RELEASE_DEREGISTERED, f"node {hold.node_name} is no longer registered", write=False)
            elif hold.applied and node.eligible:
                release(node_id, RELEASE_OVERRIDDEN, f"node {node.name} was made eligible by someone else",
                        write=False)  # fmt: skip
            elif not policy.flap_damping:
                release(node_id, RELEASE_DISABLED, f"flap damping is disabled; releasing node {node.name}")
            else:
                ready_for = self.ready_for(node_id, now=now)
                if ready_for is not None and ready_for >= policy.stable_for:
                    release(node_id, RELEASE_STABLE, f"node {node.name} has been stable for {ready_for:.0f}s")

        budget = hold_budget(len(nodes), policy)
        while held:
            withheld = [node_id for node_id in held if by_id[node_id].ready]
            failures = sorted(node.name for node in nodes if failed(node))
            if len(held) <= budget and (not withheld or len(withheld) + len(failures) <= budget):
                break
            # Give back real capacity first: the held node that has been ready longest.
            pool = withheld or list(held)
            victim = max(pool, key=lambda node_id: (self.ready_for(node_id, now=now) or 0.0, node_id))
            unavailable = ", ".join(failures) or "other nodes"
            release(victim, RELEASE_CAPACITY,
                    f"releasing node {by_id[victim].name} early: {unavailable} unavailable, and flap damping never "
                    "costs more capacity than the failure itself")  # fmt: skip

        holds: list[Hold] = []
        deferred: list[str] = []
        if policy.flap_damping:
            candidates = []
            for node in nodes:
                count = self.flaps(node.id, now=now, window=policy.flap_window)
                if node.id in held or count < policy.flap_threshold:
                    continue
                if not node.eligible or node.draining:
                    deferred.append(f"node {node.name} flapped {count} times but is already ineligible or draining")
                    continue
                candidates.append((node, count))
            candidates.sort(key=lambda item: (-item[1], item[0].name))
            for node, count in candidates:
                others_failed = [m.name for m in nodes if m.id != node.id and failed(m)]
                # Counted as ready even while down: a hold that would be released the moment the node returns
                # is churn, not damping.
                withheld_after = sum(1 for node_id in held if by_id[node_id].ready) + 1
                if len(held) + 1 > budget:
                    deferred.append(f"node {node.name} flapped {count} times; not held: the budget of {budget} "
                                    f"held node(s) is used")  # fmt: skip
                elif withheld_after + len(others_failed) > budget:
                    deferred.append(f"node {node.name} flapped {count} times; not held while "
                                    f"{', '.join(sorted(others_failed))} unavailable")  # fmt: skip
                else:
                    reason = (f"went down {count} times within {policy.flap_window:.0f}s; held ineligible until "
                              f"stable for {policy.stable_for:.0f}s")  # fmt: skip
                    hold = Hold(node.id, node.name, now, count, reason)
                    held[node.id] = hold
                    holds.append(hold)

        pending = [
            policy.stable_for - ready_for
            for node_id in held
            if (ready_for := self.ready_for(node_id, now=now)) is not None
        ]
        recheck = max(0.0, min(pending)) if pending else None
        return FlapDecision(tuple(holds), tuple(releases), tuple(deferred), recheck)
