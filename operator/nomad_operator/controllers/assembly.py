"""The one place that builds an operator process from its parts: what `nomad-operator run` runs.

One NomadClient (its User-Agent names the replica, so audit and write logs tell replicas apart), one LeaderElector as
the client's write guard, one informer filling one projected cache of Job, Allocation, Evaluation, Deployment and Node
for every controller, the GitOps controller and the node controller on the runtime's `Operator`, the git source loops
(one, or one per GitSource resource), and one HTTP server (`/hooks/<source>`, `/metrics`, `/healthz`, `/readyz`,
`/status`). The hazards of wiring them, handled here once:
- **order**: sources read the cache, so they decide only after its first list; the node controller's view is attached
  before any reconcile; on shutdown the source loops stop first (their writes need the client), then the Operator
  lets in-flight reconciles finish, releases the lock, stops the server and closes the client;
- **one writer**: sources apply only while the elector says this replica leads, the client refuses writes otherwise,
  and a new term wakes every source and publishes this replica's address for webhook forwarding;
- **news the GitOps side cannot see by itself**: when the node controller opens or closes an incident, every source
  recomputes health at once, so "degraded because pi2 is down" appears with the incident, not at the next event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from nomad_operator import __version__
from nomad_operator.controllers.gitops.cached_live import GITOPS_INDEXES, CachedLiveView
from nomad_operator.controllers.gitops.gitauth import GitAuth, NoAuth
from nomad_operator.controllers.gitops.job_events import JobEventRouter
from nomad_operator.controllers.gitops.metrics import GitOpsMetrics
from nomad_operator.controllers.gitops.resource_sources import GitSourceResources
from nomad_operator.controllers.gitops.source_secrets import resolve_git_auth, webhook_secret_for
from nomad_operator.controllers.gitops.source_set import ServedSource, SourceSet
from nomad_operator.controllers.gitops.source_spec import GitSourceSpec
from nomad_operator.controllers.gitops.source_sync import EVENT_REASON, GitSourceSync, MemoryStatusSink, StatusSink
from nomad_operator.controllers.gitops.webhook_forwarding import LeaderEndpoint, WebhookForwarder, is_forwarded
from nomad_operator.controllers.nodes import NodeController
from nomad_operator.jobspec import JobLoader
from nomad_operator.nomad import NomadClient, NomadSettings
from nomad_operator.runtime.cache import DEFAULT_INDEXES
from nomad_operator.runtime.informer import cache_for_controllers
from nomad_operator.runtime.kinds import KindRegistry
from nomad_operator.runtime.leader import LeaderElector, default_identity
from nomad_operator.runtime.leader_timing import LeaderElectionConfig
from nomad_operator.runtime.metrics import RuntimeMetrics
from nomad_operator.runtime.operator import Operator, OperatorSettings
from nomad_operator.runtime.reconciler import Controller, ObjectKey, Result
from nomad_operator.runtime.resource_store import ResourceStore
from nomad_operator.server.app import OperatorHTTPServer
from nomad_operator.server.webhooks import PushEvent, SecretGetter, StaticSecret, WebhookReceiver

log = logging.getLogger(__name__)

WEBHOOK_REASON: Final = "webhook"
LEADERSHIP_REASON: Final = "leadership"
SUPERVISE_SECONDS: Final = 5.0
"""How often dead source loops are looked for (they never should die: each cycle catches its own errors)."""
STATUS_PATH: Final = "/status"


@dataclass(frozen=True, kw_only=True)
class SingleSource:
    """Single-source mode: the source from flags and environment, its credentials, and its webhook secret."""

    spec: GitSourceSpec
    auth: GitAuth = field(default_factory=NoAuth)
    webhook_secret: SecretGetter = field(default_factory=lambda: StaticSecret(None))


@dataclass(frozen=True, kw_only=True)
class ProcessConfig:
    """Everything an operator process is built from; `single` None means resource mode (GitSources from the store)."""

    nomad: NomadSettings
    host: str = "127.0.0.1"
    port: int = 8080
    advertise: str | None = None
    single: SingleSource | None = None
    kinds: KindRegistry | None = None
    workdir: Path | None = None
    leader: LeaderElectionConfig = field(default_factory=LeaderElectionConfig)
    identity: str | None = None
    shutdown_timeout: float = 4.0


class OperatorProcess:
    """Build with a config, `await start()`, and `await stop()` (or `await run()` until SIGTERM)."""

    def __init__(self, config: ProcessConfig) -> None:
        if config.single is None and config.kinds is None:
            raise ValueError("resource mode needs the kinds (the GitSource kind file); or give a single source")
        self.config = config
        self.identity = config.identity or default_identity()
        self.client = NomadClient(config.nomad, user_agent=f"nomad-operator/{__version__} replica={self.identity}")
        self.metrics = RuntimeMetrics()
        self.gitops_metrics = GitOpsMetrics(registry=self.metrics.registry)
        self.elector = LeaderElector(self.client, config=config.leader, identity=self.identity, metrics=self.metrics)
        self.client.write_guard = self.elector
        self.sources = SourceSet()
        self.router = JobEventRouter(sources=self.sources, read_job=self._cached_job)
        self.nodes = NodeController(nomad=self.client, leadership=self.elector, registry=self.metrics.registry)
        controllers = [self.router.controller(), *(self._notify_gitops(c) for c in self.nodes.controllers())]
        self.cache = cache_for_controllers(controllers, indexes=(*DEFAULT_INDEXES, *GITOPS_INDEXES))
        self.server = OperatorHTTPServer(host=config.host, port=config.port)
        self.operator = Operator(client=self.client, controllers=controllers, leader=self.elector, server=self.server,
                                 metrics=self.metrics, cache=self.cache,
                                 settings=OperatorSettings(shutdown_timeout=config.shutdown_timeout))  # fmt: skip
        self.nodes.attach(self.cache)
        self.live = CachedLiveView(cache=self.cache, nomad=self.client, synced=self.operator.wait_synced)
        self.receiver = WebhookReceiver(sources=self.sources, on_push=self._on_push, observer=self.gitops_metrics)
        self.server.install(self.receiver)
        self.server.add_route("GET", STATUS_PATH, self._status)
        self.server.health.add_readiness_check("gitops", self._gitops_not_ready)
        self.endpoint = LeaderEndpoint(self.client, identity=self.identity, advertise=config.advertise)
        self.forwarder = WebhookForwarder(self.endpoint)
        self.loader = JobLoader()
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.workdir = config.workdir
        self.resources: GitSourceResources | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._open_incidents: frozenset[str] = frozenset()
        self._stop = asyncio.Event()
        self.elector.add_listener(self._on_leadership)

    # --- lifecycle ----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.workdir is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="nomad-operator-")
            self.workdir = Path(self._scratch.name)
        await self.client.__aenter__()
        await self.operator.start()
        if self.config.advertise is None:
            self.endpoint.advertise = default_advertise(self.config.host, self.server.port)
        single = self.config.single
        if single is not None:
            sync = self.make_source(single.spec, generation=0, sink=MemoryStatusSink(), auth=single.auth)
            self.sources.add(ServedSource(sync=sync, secret=single.webhook_secret))
        else:
            assert self.config.kinds is not None
            store = ResourceStore(self.client, self.config.kinds)
            self.resources = GitSourceResources(
                store=store, sources=self.sources, factory=self.make_source, secrets=_Secrets(self.client),
                is_leader=lambda: self.elector.is_leader,
            )  # fmt: skip
            self._spawn(self.resources.run(), "gitsource-resources")
        self._spawn(self._supervise(), "gitsource-supervisor")
        log.info("operator %s listening on %s:%d (%s)", self.identity, self.config.host, self.server.port,
                 f"source {single.spec.source_id}" if single else "GitSource resources")  # fmt: skip

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.resources is not None:
            await self.resources.stop()
        await self.sources.stop_all()
        await self.operator.stop()
        self.loader.close()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    async def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then shut down in order."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        await self.start()
        try:
            await self._stop.wait()
        finally:
            log.info("operator %s shutting down", self.identity)
            await self.stop()

    def request_stop(self) -> None:
        self._stop.set()

    # --- sources ------------------------------------------------------------------------------------------------
    def make_source(self, spec: GitSourceSpec, *, generation: int, sink: StatusSink, auth: GitAuth) -> GitSourceSync:
        assert self.workdir is not None
        folder = self.workdir / spec.namespace / spec.name
        return GitSourceSync(spec=spec, nomad=self.client, workdir=folder, loader=self.loader, auth=auth, sink=sink,
                             metrics=self.gitops_metrics, is_leader=lambda: self.elector.is_leader,
                             generation=generation, live=self.live, impacts=self.nodes.incidents)  # fmt: skip

    def _cached_job(self, key: ObjectKey) -> Any:
        return self.cache.get(key)

    def _spawn(self, work: Awaitable[Any], name: str) -> None:
        self._tasks.append(asyncio.ensure_future(work))
        self._tasks[-1].set_name(name)

    async def _supervise(self) -> None:
        while True:
            self.sources.ensure_running()
            await asyncio.sleep(SUPERVISE_SECONDS)

    def _on_leadership(self, leading: bool) -> None:
        if not leading:
            return
        self.sources.request_all(reason=LEADERSHIP_REASON)
        self._spawn(self.endpoint.publish(), "leader-endpoint")
        if self.resources is not None:
            self._spawn(self.resources.resync(), "gitsource-resync")

    def _notify_gitops(self, controller: Controller) -> Controller:
        """The node controller's reconcile, followed by a health refresh of every source when incidents changed."""
        inner = controller.reconcile

        async def reconcile(key: ObjectKey, /) -> Result:
            result = await inner(key)
            now_open = frozenset(i.node_id for i in self.nodes.incidents.open_incidents())
            if now_open != self._open_incidents:
                self._open_incidents = now_open
                self.sources.request_all(reason=EVENT_REASON)
            return result

        return Controller(
            controller.name, reconcile=reconcile, watches=controller.watches,
            max_concurrency=controller.max_concurrency, resync_period=controller.resync_period,
        )  # fmt: skip

    # --- HTTP ---------------------------------------------------------------------------------------------------
    async def _on_push(self, source: str, event: PushEvent) -> None:
        served = self.sources.find(source)
        if served is None:
            return
        served.sync.request(reason=WEBHOOK_REASON)
        if self.elector.is_leader or is_forwarded(event):
            return
        secret = await served.secret()
        if secret:
            await self.forwarder.forward(source, event, secret.encode() if isinstance(secret, str) else secret)

    async def _status(self, request: web.Request) -> web.Response:
        documents: dict[str, Any] = {}
        for served in self.sources.served():
            document = served.sync.last_document
            if document is None:
                continue
            stats = served.sync.repository.stats
            trigger = served.sync.trigger.stats
            documents[served.source_id] = {**document, "replica": {
                "identity": self.identity, "leader": self.elector.is_leader, "cycles": served.sync.cycles,
                "remoteChecks": stats.remote_checks, "fetches": stats.network_fetches,
                "triggerRequests": trigger.requests, "wakeups": trigger.wakeups,
            }}  # fmt: skip
        return web.json_response(documents)

    def _gitops_not_ready(self) -> str | None:
        waiting = [served.source_id for served in self.sources.served() if served.sync.cycles == 0]
        return f"sources without a first cycle: {', '.join(waiting)}" if waiting else None


class _Secrets:
    """Resolves a GitSource's credentials and webhook secret through the operator's client."""

    def __init__(self, client: NomadClient) -> None:
        self._client = client

    async def git_auth(self, spec: GitSourceSpec) -> GitAuth:
        return await resolve_git_auth(spec, self._client)

    def webhook_secret(self, spec: GitSourceSpec) -> SecretGetter:
        return webhook_secret_for(spec, self._client)


def default_advertise(host: str, port: int, environ: Callable[[str], str | None] = os.environ.get) -> str | None:
    """Where other replicas reach this one: NOMAD_OPERATOR_ADVERTISE, Nomad's NOMAD_ADDR_http, or a specific listen
    host; None when nothing says (then webhooks are not forwarded to this replica)."""
    explicit = (environ("NOMAD_OPERATOR_ADVERTISE") or "").strip()
    if explicit:
        return explicit if "://" in explicit else f"http://{explicit}"
    nomad_port = (environ("NOMAD_ADDR_http") or "").strip()
    if nomad_port:
        return f"http://{nomad_port}"
    if host and host not in ("0.0.0.0", "::"):
        return f"http://{host}:{port}"
    return None


async def run_process(config: ProcessConfig) -> None:
    process = OperatorProcess(config)
    with contextlib.suppress(asyncio.CancelledError):
        await process.run()
