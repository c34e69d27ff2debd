"""Flap damping: hold after N downs in M, release after S stable, and never hold more than the capacity budget."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from nomad_operator.controllers.nodes.cluster_view import NodeView
from nomad_operator.controllers.nodes.flapping import (
    RELEASE_CAPACITY,
    RELEASE_DEREGISTERED,
    RELEASE_DISABLED,
    RELEASE_OVERRIDDEN,
    RELEASE_STABLE,
    FlapDamper,
    FlapDecision,
    hold_budget,
)
from nomad_operator.controllers.nodes.policy import NodePolicy

POLICY = NodePolicy(flap_threshold=3, flap_window=60.0, stable_for=10.0)


class Cluster:
    """Nodes whose eligibility follows the damper's decisions, as the controller makes it happen."""

    def __init__(self, count: int = 3) -> None:
        self.nodes = {f"n{i}": NodeView(id=f"n{i}", name=f"pi{i}", status="ready") for i in range(1, count + 1)}
        self.damper = FlapDamper()
        self.now = 0.0
        for node in self.nodes.values():
            self.damper.observe(node, at=self.now)

    def set(self, node_id: str, **changes: object) -> None:
        self.nodes[node_id] = replace(self.nodes[node_id], **changes)  # type: ignore[arg-type]
        self.damper.observe(self.nodes[node_id], at=self.now)

    def step(self, policy: NodePolicy = POLICY) -> FlapDecision:
        decision = self.damper.decide(list(self.nodes.values()), now=self.now, policy=policy)
        for hold in decision.hold:
            self.damper.confirm_hold(hold)
            self.set(hold.node_id, eligible=False)
        for release in decision.release:
            self.damper.confirm_release(release.node_id, at=self.now, forgive=release.forgives)
            if release.write and release.node_id in self.nodes:
                self.set(release.node_id, eligible=True)
        return decision

    def flap(self, node_id: str, times: int, *, every: float = 1.0) -> None:
        for _ in range(times):
            self.now += every
            self.set(node_id, status="down")
            self.step()
            self.now += every
            self.set(node_id, status="ready")
            self.step()


def test_budget_definition() -> None:
    assert [hold_budget(n, POLICY) for n in (1, 2, 3, 5)] == [0, 1, 1, 1]
    assert hold_budget(10, POLICY) == 2
    assert hold_budget(6, POLICY) == 1
    assert hold_budget(100, NodePolicy(large_cluster_held_fraction=0.1)) == 10


def test_first_observation_is_not_a_flap() -> None:
    damper = FlapDamper()
    assert not damper.observe(NodeView(id="n1", name="pi1", status="down"), at=0.0)
    assert damper.flaps("n1", now=0.0, window=60.0) == 0
    assert damper.observe(NodeView(id="n2", name="pi2", status="ready"), at=0.0) is False
    assert damper.observe(NodeView(id="n2", name="pi2", status="down"), at=1.0) is True
    assert not damper.observe(NodeView(id="n2", name="pi2", status="disconnected"), at=2.0)  # still gone


def test_held_at_the_nth_down_and_released_after_stable() -> None:
    cluster = Cluster()
    cluster.flap("n2", 2)
    assert cluster.damper.held == {}
    cluster.now += 1
    cluster.set("n2", status="down")
    decision = cluster.step()
    assert [hold.node_name for hold in decision.hold] == ["pi2"]
    assert "went down 3 times" in decision.hold[0].reason
    assert not cluster.nodes["n2"].eligible  # ineligible before it even returns
    cluster.now += 1
    cluster.set("n2", status="ready")
    decision = cluster.step()
    assert decision.recheck_after == 10.0
    assert not decision.release
    cluster.now += 9.9
    assert not cluster.step().release
    cluster.now += 0.1
    decision = cluster.step()
    assert [(r.node_name, r.reason) for r in decision.release] == [("pi2", RELEASE_STABLE)]
    assert cluster.nodes["n2"].eligible
    # The flaps up to the release are forgiven: no immediate re-hold.
    assert cluster.step().hold == ()
    assert cluster.damper.flaps("n2", now=cluster.now, window=60.0) == 0


def test_flaps_outside_the_window_do_not_count() -> None:
    cluster = Cluster()
    cluster.flap("n2", 2, every=20.0)  # downs at 20 and 60
    cluster.now += 30.0  # the next down at 110: the first is older than the window
    cluster.set("n2", status="down")
    assert cluster.step().hold == ()
    assert cluster.damper.flaps("n2", now=cluster.now, window=60.0) == 2


def test_never_two_nodes_held_in_a_small_cluster() -> None:
    cluster = Cluster()
    cluster.flap("n2", 2)
    cluster.now += 1
    cluster.set("n2", status="down")  # the third down: held, and it stays down
    cluster.step()
    assert set(cluster.damper.held) == {"n2"}
    cluster.flap("n3", 3)
    assert set(cluster.damper.held) == {"n2"}
    decision = cluster.step()
    assert any("budget of 1" in note and "pi3" in note for note in decision.deferred)


def test_held_node_released_when_another_node_fails() -> None:
    cluster = Cluster()
    cluster.flap("n2", 3)
    assert set(cluster.damper.held) == {"n2"}
    cluster.now += 1
    cluster.set("n3", status="down")
    decision = cluster.step()
    assert [(r.node_name, r.reason) for r in decision.release] == [("pi2", RELEASE_CAPACITY)]
    assert "pi3 unavailable" in decision.release[0].message
    assert cluster.nodes["n2"].eligible
    # Once pi3 is back, pi2 (still within its flap window) is held again.
    cluster.now += 1
    cluster.set("n3", status="ready")
    assert [hold.node_name for hold in cluster.step().hold] == ["pi2"]


def test_not_held_while_another_node_is_down() -> None:
    cluster = Cluster()
    cluster.set("n3", status="down")
    cluster.flap("n2", 4)
    assert cluster.damper.held == {}
    assert any("not held while pi3 unavailable" in note for note in cluster.step().deferred)


def test_a_person_making_the_node_eligible_wins() -> None:
    cluster = Cluster()
    cluster.flap("n2", 3)
    cluster.set("n2", eligible=True)  # `nomad node eligibility -enable`
    decision = cluster.step()
    assert [(r.reason, r.write) for r in decision.release] == [(RELEASE_OVERRIDDEN, False)]


def test_a_hold_not_yet_seen_applied_is_not_taken_for_an_override() -> None:
    damper = FlapDamper()
    node = NodeView(id="n2", name="pi2", status="ready")
    damper.observe(node, at=0.0)
    for at in (1.0, 3.0, 5.0):
        damper.observe(replace(node, status="down"), at=at)
        damper.observe(node, at=at + 1)
    others = [NodeView(id="n1", name="pi1", status="ready"), NodeView(id="n3", name="pi3", status="ready")]
    decision = damper.decide([node, *others], now=6.0, policy=POLICY)
    damper.confirm_hold(decision.hold[0])
    # The cache still shows the node eligible: the write's event has not arrived yet.
    assert damper.decide([node, *others], now=6.1, policy=POLICY).release == ()


def test_ineligible_or_draining_nodes_are_left_to_people() -> None:
    cluster = Cluster()
    cluster.set("n2", eligible=False)
    cluster.flap("n2", 3)
    assert cluster.damper.held == {}
    assert any("already ineligible" in note for note in cluster.step().deferred)


def test_disabling_damping_releases_holds() -> None:
    cluster = Cluster()
    cluster.flap("n2", 3)
    decision = cluster.step(NodePolicy(flap_damping=False))
    assert [r.reason for r in decision.release] == [RELEASE_DISABLED]


def test_deregistered_node_hold_is_dropped_without_a_write() -> None:
    cluster = Cluster()
    cluster.flap("n2", 3)
    del cluster.nodes["n2"]
    decision = cluster.step()
    assert [(r.reason, r.write) for r in decision.release] == [(RELEASE_DEREGISTERED, False)]


def test_restored_holds_count_as_applied() -> None:
    damper = FlapDamper()
    cluster = Cluster()
    cluster.flap("n2", 3)
    damper.restore(cluster.damper.held.values())
    assert damper.held["n2"].applied


EVENTS = st.lists(
    st.tuples(st.sampled_from(["n1", "n2", "n3"]), st.sampled_from(["down", "ready", "initializing"]),
              st.floats(min_value=0.0, max_value=20.0)),
    max_size=60,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(EVENTS)
def test_property_never_two_held_and_never_worse_than_the_failure(events: list[tuple[str, str, float]]) -> None:
    cluster = Cluster()
    for node_id, status, pause in events:
        cluster.now += pause
        cluster.set(node_id, status=status)
        cluster.step()
        held = cluster.damper.held
        assert len(held) <= 1
        withheld = [node_id for node_id in held if cluster.nodes[node_id].ready]
        failed = [n for n in cluster.nodes.values() if n.id not in held and not n.schedulable]
        if withheld:
            assert len(withheld) + len(failed) <= 1
        # Every node we hold is ineligible; every other node keeps the eligibility it had.
        assert all(not cluster.nodes[node_id].eligible for node_id in held)
