"""One consistent read of the informer cache, as the typed views the node controller's decisions take.

The decisions look across kinds (a node's allocations, a job's evaluations and deployments), and reading the cache
piecemeal inside each decision would scatter wire-format knowledge through the controller. `ClusterSnapshot.read`
takes everything once per reconcile, groups it by job, and tolerates kinds the cache does not hold (a runtime that
watches no deployments yields none, rather than an error in the middle of a node-down incident).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nomad_operator.controllers.nodes.cluster_view import (
    AllocView,
    DeploymentView,
    EvalView,
    JobRef,
    JobView,
    NodeView,
)
from nomad_operator.runtime.errors import UncachedKind


class CacheReader(Protocol):
    """The part of `runtime.Cache` read here."""

    def objects(self, kind: str, *, namespace: str | None = None) -> list[Mapping[str, Any]]: ...


def _objects(cache: CacheReader, kind: str) -> list[Mapping[str, Any]]:
    try:
        return cache.objects(kind)
    except UncachedKind:  # this kind is not watched
        return []


def _by_job(items: Iterable[Any]) -> dict[JobRef, list[Any]]:
    grouped: dict[JobRef, list[Any]] = {}
    for item in items:
        grouped.setdefault(item.job, []).append(item)
    return grouped


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    nodes: tuple[NodeView, ...] = ()
    jobs: Mapping[JobRef, JobView] = field(default_factory=dict)
    allocs: tuple[AllocView, ...] = ()
    allocs_by_job: Mapping[JobRef, list[AllocView]] = field(default_factory=dict)
    evals_by_job: Mapping[JobRef, list[EvalView]] = field(default_factory=dict)
    deployments_by_job: Mapping[JobRef, list[DeploymentView]] = field(default_factory=dict)

    @property
    def node_names(self) -> dict[str, str]:
        return {node.id: node.name for node in self.nodes}

    def node(self, node_id: str) -> NodeView | None:
        return next((node for node in self.nodes if node.id == node_id), None)

    @classmethod
    def read(cls, cache: CacheReader) -> ClusterSnapshot:
        nodes = tuple(sorted((NodeView.from_wire(obj) for obj in _objects(cache, "Node")), key=lambda n: n.name))
        jobs = {view.ref: view for view in (JobView.from_wire(obj) for obj in _objects(cache, "Job"))}
        allocs = tuple(AllocView.from_wire(obj) for obj in _objects(cache, "Allocation"))
        evals = [EvalView.from_wire(obj) for obj in _objects(cache, "Evaluation")]
        deployments = [DeploymentView.from_wire(obj) for obj in _objects(cache, "Deployment")]
        return cls(
            nodes=nodes,
            jobs=jobs,
            allocs=allocs,
            allocs_by_job=_by_job(allocs),
            evals_by_job=_by_job(evals),
            deployments_by_job=_by_job(deployments),
        )
