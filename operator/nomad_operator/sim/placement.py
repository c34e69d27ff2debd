"""Where one allocation of a task group can go: node usage, feasibility, fit, host ports and ranking.

The scheduler decides *what* to place and stop; this module answers *where*, following the order of Nomad's stack
(job constraints, drivers, group and task constraints, distinct_hosts, distinct_property, then ports, CPU and memory),
and says *why not* in Nomad's words when nothing fits (``placement_metrics``). The hazards it handles: two allocations
handed the same host port on one node; CPU or memory counted twice because an allocation stopped in the same plan was
not released; distinct_hosts broken by a placement made earlier in the same plan; and quadratic scans that would make
a 10,000-allocation cluster crawl. Usage is computed once per plan and updated as the plan grows; the static part of
feasibility (constraints, drivers) is computed once per task group and node. Randomness comes only from the injected
``random.Random``: one shuffle of the candidates (Nomad shuffles too, to break ties) and the dynamic port draws.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nomad_operator.sim.constraints import (
    DISTINCT_HOSTS,
    DISTINCT_PROPERTY,
    PLACEMENT_DEPENDENT_OPERANDS,
    Constraint,
    datacenter_matches,
    meets_constraint,
    resolve_target,
)
from nomad_operator.sim.job_asks import GroupAsk, JobAsk, PortAsk, Spread
from nomad_operator.sim.placement_metrics import (
    DIMENSION_CPU,
    DIMENSION_MEMORY,
    DYNAMIC_PORT_FAILED,
    FailureMetric,
    reserved_port_collision,
)

if TYPE_CHECKING:
    from nomad_operator.sim.scheduler import AllocInfo, NodeInfo

DYNAMIC_PORT_MIN = 20000
DYNAMIC_PORT_MAX = 31999
DYNAMIC_PORT_RANGE = DYNAMIC_PORT_MAX - DYNAMIC_PORT_MIN + 1
DYNAMIC_PORT_RANDOM_TRIES = 20  # Nomad draws random ports first, then scans the range
DEFAULT_HOST_IP = "127.0.0.1"
MISSING_DRIVERS = "missing drivers"
NODE_POOL_ALL = "all"
LIVE_CLIENT_STATUSES = frozenset({"pending", "running", "unknown"})


def is_live(alloc: AllocInfo) -> bool:
    """Non-terminal for the scheduler: still wanted and not finished (Nomad's !TerminalStatus())."""
    return alloc.desired_status == "run" and alloc.client_status in LIVE_CLIENT_STATUSES


def is_ready(node: NodeInfo) -> bool:
    """Nomad's Node.Ready(): the only nodes that receive new allocations."""
    return node.status == "ready" and node.eligible and not node.draining


@dataclass(slots=True)
class NodeUsage:
    """What is already spoken for on one node while the plan is built."""

    cpu_mhz: int = 0
    memory_mb: int = 0
    ports: set[int] = field(default_factory=set)
    job_total: int = 0  # live allocations of the planned job
    job_groups: Counter[str] = field(default_factory=Counter)  # the same, per task group


@dataclass(frozen=True, slots=True)
class Choice:
    """A node picked for one allocation: its host ports (ask, host port) and what it was charged."""

    node_id: str
    host_ip: str
    ports: tuple[tuple[PortAsk, int], ...]
    cpu_mhz: int
    memory_mb: int


class Placer:
    """Answers "which node for one more allocation of this group?" for one plan, keeping usage as the plan grows."""

    def __init__(
        self,
        *,
        job: JobAsk,
        nodes: Sequence[NodeInfo],
        other_allocs: Iterable[AllocInfo],
        job_allocs: Iterable[AllocInfo],
        rng: random.Random,
        node_usage: Mapping[str, NodeUsage] | None = None,
    ) -> None:
        self._job = job
        self._rng = rng
        self._nodes = {node.id: node for node in nodes}
        # Port sets shared with `node_usage` until this plan changes them (copy on write): copying every node's ports
        # for every evaluation would cost as much as the scan it replaces.
        self._shared_ports: set[str] = set()
        self._own_counted = node_usage is not None
        if node_usage is not None:
            self._usage = self._from_totals(node_usage)
        else:
            self._usage = self._from_allocs(other_allocs)
        for alloc in job_allocs:
            if is_live(alloc):
                if self._own_counted:
                    self._count_only(alloc)
                else:
                    self.hold(alloc)
        in_pool = [node for node in sorted(nodes, key=lambda node: node.id) if is_ready(node) and self.in_scope(node)]
        rng.shuffle(in_pool)
        self.candidates: tuple[NodeInfo, ...] = tuple(in_pool)
        self.nodes_available = dict(Counter(node.datacenter for node in in_pool))
        self._static: dict[str, dict[str, str | None]] = {}

    def _from_totals(self, node_usage: Mapping[str, NodeUsage]) -> dict[str, NodeUsage]:
        """Usage from precomputed totals of every live allocation, this job's included (so the job's own live
        allocations are then only counted as the job's, see `_count_only`, not charged a second time)."""
        usage: dict[str, NodeUsage] = {}
        for node_id in self._nodes:
            total = node_usage.get(node_id)
            if total is None:
                usage[node_id] = NodeUsage()
                continue
            usage[node_id] = NodeUsage(cpu_mhz=total.cpu_mhz, memory_mb=total.memory_mb, ports=total.ports)
            self._shared_ports.add(node_id)
        return usage

    def _from_allocs(self, other_allocs: Iterable[AllocInfo]) -> dict[str, NodeUsage]:
        usage = {node_id: NodeUsage() for node_id in self._nodes}
        live_statuses = LIVE_CLIENT_STATUSES
        # The hot loop of a plan on a big cluster (every allocation of every other job): kept lean on purpose.
        for alloc in other_allocs:
            if alloc.desired_status == "run" and alloc.client_status in live_statuses:
                slot = usage.get(alloc.node_id)
                if slot is not None:
                    slot.cpu_mhz += alloc.cpu_mhz
                    slot.memory_mb += alloc.memory_mb
                    if alloc.ports:
                        ports = slot.ports
                        for port in alloc.ports:
                            ports.add(port.value)
        return usage

    def node(self, node_id: str) -> NodeInfo | None:
        return self._nodes.get(node_id)

    def hold(self, alloc: AllocInfo) -> None:
        """Count a live allocation of the planned job against its node."""
        ports = [port.value for port in alloc.ports]
        self._adjust(alloc.node_id, alloc.task_group, alloc.cpu_mhz, alloc.memory_mb, ports, 1)

    def release(self, alloc: AllocInfo) -> None:
        """The plan stops this allocation of the planned job: its node gets its resources back."""
        ports = [port.value for port in alloc.ports]
        self._adjust(alloc.node_id, alloc.task_group, alloc.cpu_mhz, alloc.memory_mb, ports, -1)

    def commit(self, group: GroupAsk, choice: Choice) -> None:
        self._adjust(choice.node_id, group.name, choice.cpu_mhz, choice.memory_mb, [v for _, v in choice.ports], 1)

    def _count_only(self, alloc: AllocInfo) -> None:
        """A live allocation of the planned job whose resources the precomputed totals already hold."""
        usage = self._usage.get(alloc.node_id)
        if usage is not None:
            usage.job_total += 1
            usage.job_groups[alloc.task_group] += 1

    def _adjust(self, node_id: str, group: str, cpu: int, memory: int, ports: list[int], sign: int) -> None:
        usage = self._usage.get(node_id)
        if usage is None:
            return
        if ports and node_id in self._shared_ports:
            usage.ports = set(usage.ports)
            self._shared_ports.discard(node_id)
        usage.cpu_mhz += sign * cpu
        usage.memory_mb += sign * memory
        if sign > 0:
            usage.ports.update(ports)
        else:
            usage.ports.difference_update(ports)
        usage.job_total += sign
        usage.job_groups[group] += sign

    def in_scope(self, node: NodeInfo) -> bool:
        """Whether the node is in the job's datacenters and node pool (whatever its status)."""
        return self._job.node_pool in (NODE_POOL_ALL, node.node_pool) and datacenter_matches(
            self._job.datacenters, node.datacenter
        )

    def could_run_on(self, group: GroupAsk, node: NodeInfo) -> bool:
        """Datacenters, node pool, constraints and drivers allow the group on this node (fit aside)."""
        return self.in_scope(node) and self.static_reason(group, node) is None

    def static_reason(self, group: GroupAsk, node: NodeInfo) -> str | None:
        """Why the node can never take this group (constraints, drivers), cached; None when it can."""
        cache = self._static.setdefault(group.name, {})
        if node.id not in cache:
            cache[node.id] = self._compute_static_reason(group, node)
        return cache[node.id]

    def _compute_static_reason(self, group: GroupAsk, node: NodeInfo) -> str | None:
        region = self._job.region
        for constraint in self._job.constraints:
            if constraint.operand not in PLACEMENT_DEPENDENT_OPERANDS and not meets_constraint(
                constraint, node, region=region
            ):
                return str(constraint)
        if not group.drivers <= node.drivers:
            return MISSING_DRIVERS
        for constraint in group.constraints:
            if constraint.operand not in PLACEMENT_DEPENDENT_OPERANDS and not meets_constraint(
                constraint, node, region=region
            ):
                return str(constraint)
        return None

    def select(self, group: GroupAsk, *, only: NodeInfo | None = None) -> Choice | FailureMetric:
        """The best node for one more allocation of ``group`` (or ``only`` that node), or why none fits."""
        metric = FailureMetric(
            node_pool=self._job.node_pool,
            nodes_available=self.nodes_available,
            nodes_in_pool=len(self.candidates),
        )
        properties = self._property_counts(group)
        distinct_job, distinct_group = self._job.distinct_hosts, group.distinct_hosts
        best: NodeInfo | None = None
        best_cpu = 0
        best_score = float("-inf")
        for node in (only,) if only is not None else self.candidates:
            metric.evaluate_node()
            reason = self.static_reason(group, node)
            usage = self._usage[node.id]
            if reason is None and (
                (distinct_job and usage.job_total) or (distinct_group and usage.job_groups[group.name])
            ):
                reason = DISTINCT_HOSTS
            if reason is None and properties:
                reason = _property_reason(node, properties, region=self._job.region)
            if reason is not None:
                metric.filter_node(node.node_class, reason)
                continue
            cpu = group.cpu_mhz + group.cores * _mhz_per_core(node) if group.cores else group.cpu_mhz
            dimension = self._exhausted_dimension(group, node, usage, cpu)
            if dimension is not None:
                metric.exhaust_node(node.node_class, dimension)
                continue
            score = self._score(group, node, usage, cpu)
            if score > best_score:
                best, best_score, best_cpu = node, score, cpu
        if best is None:
            metric.exhaust_resources(group.task_resources)
            return metric
        usage = self._usage[best.id]
        ports = tuple((ask, ask.value) for ask in group.reserved_ports) + self._dynamic_ports(group, usage)
        host_ip = best.attributes.get("unique.network.ip-address") or DEFAULT_HOST_IP
        return Choice(node_id=best.id, host_ip=host_ip, ports=ports, cpu_mhz=best_cpu, memory_mb=group.memory_mb)

    def _exhausted_dimension(self, group: GroupAsk, node: NodeInfo, usage: NodeUsage, cpu: int) -> str | None:
        # Nomad's order: the network index first (static, then dynamic ports), then AllocsFit (cpu, then memory).
        seen: set[int] = set()
        for ask in group.reserved_ports:
            if ask.value in usage.ports or ask.value in seen:
                return reserved_port_collision(ask.label, ask.value)
            seen.add(ask.value)
        # Counting the taken dynamic ports is only worth it when the node holds nearly a range's worth of ports.
        if group.dynamic_ports and len(usage.ports) + len(seen) + len(group.dynamic_ports) > DYNAMIC_PORT_RANGE:
            taken = sum(1 for port in usage.ports | seen if DYNAMIC_PORT_MIN <= port <= DYNAMIC_PORT_MAX)
            if DYNAMIC_PORT_RANGE - taken < len(group.dynamic_ports):
                return DYNAMIC_PORT_FAILED
        if usage.cpu_mhz + cpu > node.cpu_mhz:
            return DIMENSION_CPU
        if usage.memory_mb + group.memory_mb > node.memory_mb:
            return DIMENSION_MEMORY
        return None

    def _dynamic_ports(self, group: GroupAsk, usage: NodeUsage) -> tuple[tuple[PortAsk, int], ...]:
        taken = usage.ports | {ask.value for ask in group.reserved_ports}
        chosen: list[tuple[PortAsk, int]] = []
        for ask in group.dynamic_ports:
            port = 0
            for _ in range(DYNAMIC_PORT_RANDOM_TRIES):
                draw = self._rng.randint(DYNAMIC_PORT_MIN, DYNAMIC_PORT_MAX)
                if draw not in taken:
                    port = draw
                    break
            if not port:  # the range is crowded: scan it (free ports were counted before choosing this node)
                port = next(p for p in range(DYNAMIC_PORT_MIN, DYNAMIC_PORT_MAX + 1) if p not in taken)
            taken.add(port)
            chosen.append((ask, port))
        return tuple(chosen)

    def _score(self, group: GroupAsk, node: NodeInfo, usage: NodeUsage, cpu: int) -> float:
        # Like Nomad's normalized score: the mean of the components that apply to this node.
        cpu_share = (usage.cpu_mhz + cpu) / node.cpu_mhz if node.cpu_mhz > 0 else 1.0
        memory_share = (usage.memory_mb + group.memory_mb) / node.memory_mb if node.memory_mb > 0 else 1.0
        scores = [1.0 - (cpu_share + memory_share) / 2]  # least loaded first
        collisions = usage.job_groups[group.name]
        if collisions:
            scores.append(-(collisions + 1) / max(group.count, 1))  # Nomad's job anti-affinity
        affinities = self._job.affinities + group.affinities
        if affinities:
            total = sum(abs(affinity.weight) for affinity in affinities) or 1
            matched = sum(
                affinity.weight
                for affinity in affinities
                if meets_constraint(affinity.constraint, node, region=self._job.region)
            )
            scores.append(matched / total)
        spreads = self._job.spreads + group.spreads
        if spreads:
            scores.append(self._spread_score(group, node, spreads))
        return sum(scores) / len(scores)

    def _spread_score(self, group: GroupAsk, node: NodeInfo, spreads: tuple[Spread, ...]) -> float:
        total_weight = sum(abs(spread.weight) for spread in spreads) or 1
        region = self._job.region
        score = 0.0
        for spread in spreads:
            value, found = resolve_target(spread.attribute, node, region=region)
            if not found:
                score -= spread.weight / total_weight
                continue
            used: Counter[str] = Counter()
            values: set[str] = set()
            for other in self.candidates:
                other_value, other_found = resolve_target(spread.attribute, other, region=region)
                if other_found:
                    values.add(other_value)
                    used[other_value] += self._usage[other.id].job_groups[group.name]
            if spread.targets:
                percent = spread.targets.get(value, max(0, 100 - sum(spread.targets.values())))
                desired = percent / 100 * group.count
            else:
                desired = group.count / max(len(values), 1)
            boost = (desired - used[value]) / desired if desired > 0 else -1.0
            score += max(-1.0, min(1.0, boost)) * spread.weight / total_weight
        return score

    def _property_counts(self, group: GroupAsk) -> list[tuple[Constraint, int | None, Counter[str]]]:
        """For each distinct_property constraint: how many allowed per value, and how many use each value now."""
        scoped = [(c, False) for c in self._job.constraints if c.operand == DISTINCT_PROPERTY]
        scoped += [(c, True) for c in group.constraints if c.operand == DISTINCT_PROPERTY]
        result: list[tuple[Constraint, int | None, Counter[str]]] = []
        for constraint, group_only in scoped:
            allowed = _allowed_count(constraint.rtarget)
            counts: Counter[str] = Counter()
            for node_id, usage in self._usage.items():
                held = usage.job_groups[group.name] if group_only else usage.job_total
                if held:
                    value, found = resolve_target(constraint.ltarget, self._nodes[node_id], region=self._job.region)
                    if found:
                        counts[value] += held
            result.append((constraint, allowed, counts))
        return result


def _allowed_count(rtarget: str) -> int | None:
    if not rtarget:
        return 1
    return int(rtarget) if rtarget.isdigit() else None


def _property_reason(
    node: NodeInfo, properties: list[tuple[Constraint, int | None, Counter[str]]], *, region: str
) -> str | None:
    for constraint, allowed, counts in properties:
        if allowed is None:
            return f'failed to convert RTarget "{constraint.rtarget}" to uint64'
        value, found = resolve_target(constraint.ltarget, node, region=region)
        if not found:
            return f'missing property "{constraint.ltarget}"'
        if counts[value] >= allowed:
            return f"distinct_property: {constraint.ltarget}={value} used by {counts[value]} allocs"
    return None


def _mhz_per_core(node: NodeInfo) -> int:
    cores = node.attributes.get("cpu.numcores", "")
    return node.cpu_mhz // int(cores) if cores.isdigit() and int(cores) > 0 else node.cpu_mhz
