"""`nomad-operator run`: the long-running operator for git sources, with its HTTP server.

Single-source mode (`--repo` or NOMAD_OPERATOR_REPO) builds the GitSource in memory, so a fresh cluster can be
bootstrapped before any resource exists: that is how `jobs/nomad-operator.nomad` runs it. The process campaigns for
the leader lock (only the leader writes; a standby decides and reports), follows Nomad's events for owned jobs, and
serves `POST /hooks/<name>` (signed webhooks), `/metrics`, `/healthz`, `/readyz` and `/status` (the sources' status
as JSON, for `nomad-operator status`). SIGTERM stops the loops, releases the lock and closes the server within
Nomad's kill timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import Final

from aiohttp import web

from nomad_operator.controllers.gitops.cli_source import (
    CliConfigError,
    add_source_arguments,
    git_auth_from_environment,
    listen_address,
    spec_from_arguments,
    webhook_secret_file,
)
from nomad_operator.controllers.gitops.event_watch import EventWatch
from nomad_operator.controllers.gitops.git_errors import GitSourceError
from nomad_operator.controllers.gitops.metrics import GitOpsMetrics
from nomad_operator.controllers.gitops.source_sync import GitSourceSync, MemoryStatusSink
from nomad_operator.jobspec import JobLoader
from nomad_operator.nomad import NomadClient, NomadError, NomadSettings
from nomad_operator.runtime.metrics import CONTENT_TYPE, RuntimeMetrics
from nomad_operator.server.webhooks import FileSecret, PushEvent, StaticSecret, WebhookReceiver, WebhookSource

log = logging.getLogger(__name__)

EXIT_ERROR: Final = 255
SHUTDOWN_TIMEOUT_SECONDS: Final = 1.0
WEBHOOK_REASON: Final = "webhook"


def add_run_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser("run", help="run the operator: sync git sources to Nomad, serve webhooks and metrics")
    add_source_arguments(run)
    run.add_argument(
        "--webhook-secret-file", help="file holding the webhook secret (env NOMAD_OPERATOR_WEBHOOK_SECRET_FILE)"
    )
    run.add_argument("--listen", help="HOST:PORT of the HTTP server (NOMAD_OPERATOR_LISTEN; default 127.0.0.1:8080)")
    run.add_argument("--workdir", type=Path, help="where working copies live (default: a temporary folder)")
    run.set_defaults(handler=handle_run)


class SingleSource:
    """The WebhookSources of single-source mode: one name, one secret file."""

    def __init__(self, source: GitSourceSync, secret: WebhookSource) -> None:
        self.source = source
        self.webhook = secret

    def lookup(self, name: str) -> WebhookSource | None:
        return self.webhook if name == self.source.spec.name else None


def handle_run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run_operator(args))
    except KeyboardInterrupt:
        return 0


async def run_operator(args: argparse.Namespace) -> int:
    if not (args.repo or _env_repo()):
        print("error: serving GitSource resources from Nomad Variables needs the runtime's resource store, which "
              "this build does not wire yet; give --repo URL (or NOMAD_OPERATOR_REPO) for single-source mode",
              file=sys.stderr)  # fmt: skip
        return EXIT_ERROR
    try:
        spec = spec_from_arguments(args)
        auth = git_auth_from_environment()
        host, port = listen_address(args)
        secret_path = webhook_secret_file(args)
        settings = NomadSettings.from_env()
    except (CliConfigError, GitSourceError, NomadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    from nomad_operator.runtime.leader import LeaderElector

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runtime_metrics = RuntimeMetrics()
    metrics = GitOpsMetrics(registry=runtime_metrics.registry)
    sink = MemoryStatusSink()
    with tempfile.TemporaryDirectory(prefix="nomad-operator-") as scratch:
        workdir = args.workdir or Path(scratch)
        async with NomadClient(settings) as nomad, JobLoader() as loader:
            elector = LeaderElector(nomad, metrics=runtime_metrics)
            nomad.write_guard = elector
            source = GitSourceSync(spec=spec, nomad=nomad, workdir=workdir / spec.name, loader=loader, auth=auth,
                                   sink=sink, metrics=metrics, is_leader=lambda: elector.is_leader)  # fmt: skip
            elector.add_listener(lambda leading: source.request(reason="leadership") if leading else None)
            secret = FileSecret(secret_path) if secret_path is not None else StaticSecret(None)
            sources = SingleSource(source, WebhookSource(name=spec.name, ref=spec.ref, secret=secret))

            def on_push(name: str, event: PushEvent) -> None:
                source.request(reason=WEBHOOK_REASON)

            app = build_app(sources=sources, on_push=on_push, metrics=metrics, runtime_metrics=runtime_metrics,
                            sink=sink, ready=lambda: source.cycles > 0)  # fmt: skip
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
            await runner.setup()
            site = web.TCPSite(runner, host, port)
            await site.start()
            log.info("listening on %s:%s; source %s follows %s", host, port, spec.source_id, spec.ref)
            watch = EventWatch(nomad, lambda: [source])
            tasks = [asyncio.create_task(elector.run()), asyncio.create_task(source.run()),
                     asyncio.create_task(watch.run())]  # fmt: skip
            try:
                await stop.wait()
            finally:
                for task in reversed(tasks):
                    task.cancel()
                for task in reversed(tasks):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                await runner.cleanup()
    return 0


def _env_repo() -> str:
    import os

    return os.environ.get("NOMAD_OPERATOR_REPO", "").strip()


def build_app(
    *,
    sources: SingleSource,
    on_push: object,
    metrics: GitOpsMetrics,
    runtime_metrics: RuntimeMetrics,
    sink: MemoryStatusSink,
    ready: object,
) -> web.Application:
    """The operator's HTTP app: webhooks, metrics, health and the status documents."""
    app = web.Application(client_max_size=2 * 1024 * 1024)
    receiver = WebhookReceiver(sources=sources, on_push=on_push, observer=metrics)  # type: ignore[arg-type]

    async def metrics_route(request: web.Request) -> web.Response:
        return web.Response(body=runtime_metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        is_ready = bool(ready() if callable(ready) else ready)
        return web.json_response({"ready": is_ready}, status=200 if is_ready else 503)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(sink.documents)

    receiver.install(app)
    app.router.add_get("/metrics", metrics_route)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    return app
