"""`nomad-operator run`, `plan`, `sync` and `status`: the GitOps controller from the command line.

`plan` (and `sync --dry-run`) is what people run before they push, and scripts gate on its exit code: 0 when
nothing would change, 1 when something would, 255 on any error (a file that fails to convert, an unreachable remote
or Nomad), so an error never reads as "no change". Diffs come from Nomad's own plan and pass the redactor. `sync`
runs one cycle now, and writes only after winning the same leader lock the running replicas use (rule 2). `status`
asks a running operator's HTTP server and prints a table. `run` lives in `operator_run`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any, Final, TextIO

import aiohttp

from nomad_operator.controllers.gitops.cli_source import (
    CliConfigError,
    add_source_arguments,
    git_auth_from_environment,
    spec_from_arguments,
)
from nomad_operator.controllers.gitops.git_errors import GitSourceError
from nomad_operator.controllers.gitops.source_sync import GitSourceSync
from nomad_operator.controllers.gitops.sync_plan import ActionKind, SyncPlan
from nomad_operator.jobspec import JobLoader
from nomad_operator.nomad import NomadClient, NomadError, NomadSettings

EXIT_NO_CHANGES: Final = 0
EXIT_CHANGES: Final = 1
EXIT_ERROR: Final = 255
LEADER_WAIT_SECONDS: Final = 30.0
STATUS_TIMEOUT_SECONDS: Final = 10.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from nomad_operator.controllers.gitops.operator_run import add_run_parser

    add_run_parser(subparsers)
    plan = subparsers.add_parser("plan", help="print what a sync would create, update and stop (exit 0/1/255)")
    add_source_arguments(plan)
    plan.set_defaults(handler=handle_plan)
    sync = subparsers.add_parser("sync", help="run one sync now (as the leader), or --dry-run to plan it")
    add_source_arguments(sync)
    sync.add_argument("--dry-run", action="store_true", help="only print the plan, like `plan`")
    sync.set_defaults(handler=handle_sync)
    status = subparsers.add_parser("status", help="print the GitSource status of a running operator as a table")
    status.add_argument("--server", default="http://127.0.0.1:8080", help="the operator's HTTP address")
    status.add_argument("--name", help="only this source (namespace/name or name)")
    status.set_defaults(handler=handle_status)


def handle_plan(args: argparse.Namespace) -> int:
    return asyncio.run(_one_cycle(args, dry_run=True, out=sys.stdout))


def handle_sync(args: argparse.Namespace) -> int:
    return asyncio.run(_one_cycle(args, dry_run=bool(args.dry_run), out=sys.stdout))


async def _one_cycle(args: argparse.Namespace, *, dry_run: bool, out: TextIO) -> int:
    try:
        spec = spec_from_arguments(args)
        auth = git_auth_from_environment()
        settings = NomadSettings.from_env()
    except (CliConfigError, GitSourceError, NomadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if dry_run:
        spec = dataclasses.replace(spec, prune_grace=0.0)  # a one-shot plan has no history to wait on
    with tempfile.TemporaryDirectory(prefix="nomad-operator-plan-") as folder:
        try:
            async with NomadClient(settings) as nomad, JobLoader(max_workers=0) as loader:
                elector_task = None
                if not dry_run:
                    elector_task = await _lead(nomad)
                    if elector_task is None:
                        print("error: another replica holds the leader lock; it will sync", file=sys.stderr)
                        return EXIT_ERROR
                try:
                    source = GitSourceSync(spec=spec, nomad=nomad, workdir=Path(folder) / "repo", loader=loader,
                                           auth=auth)  # fmt: skip
                    cycle = await source.sync_once(dry_run=dry_run)
                finally:
                    if elector_task is not None:
                        elector_task.cancel()
                        await asyncio.gather(elector_task, return_exceptions=True)
                if cycle.plan is None or cycle.desired is None:
                    print(f"error: {source.status.message}", file=sys.stderr)
                    return EXIT_ERROR
                await print_plan(source, cycle.plan, out=out, dry_run=dry_run)
                for path, error in sorted(cycle.desired.errors.items()):
                    print(f"! file {path}: {error}", file=out)
                if cycle.desired.errors:
                    return EXIT_ERROR
                if not dry_run:
                    return EXIT_NO_CHANGES if cycle.result in ("Applied", "NoChange") else EXIT_ERROR
                return EXIT_CHANGES if cycle.plan.has_changes else EXIT_NO_CHANGES
        except (NomadError, GitSourceError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR


async def _lead(nomad: NomadClient) -> asyncio.Task[None] | None:
    from nomad_operator.runtime.leader import LeaderElector

    elector = LeaderElector(nomad)
    nomad.write_guard = elector
    task = asyncio.create_task(elector.run())
    try:
        async with asyncio.timeout(LEADER_WAIT_SECONDS):
            await elector.wait_for_leadership()
    except TimeoutError:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    return task


async def print_plan(source: GitSourceSync, plan: SyncPlan, *, out: TextIO, dry_run: bool) -> None:
    """Creates, updates (with field diffs from Nomad's plan), stops, conflicts and blocked jobs, then a summary."""
    print(f"{'plan' if dry_run else 'sync'} of source {plan.source} at {plan.revision[:12]}:", file=out)
    marks = {
        ActionKind.CREATE: "+ create", ActionKind.UPDATE: "~ update", ActionKind.ADOPT: "~ adopt",
        ActionKind.PRUNE: "- stop", ActionKind.CONFLICT: "! conflict", ActionKind.BLOCKED: "! blocked",
    }  # fmt: skip
    for action in plan.actions:
        if action.kind is ActionKind.UNCHANGED:
            continue
        name = f"{action.key[0]}/{action.key[1]}"
        where = f" ({action.desired.path})" if action.desired is not None else ""
        print(f"{marks[action.kind]} {name}{where}: {action.reason}", file=out)
        if dry_run and action.kind in (ActionKind.UPDATE, ActionKind.ADOPT) and action.desired is not None:
            from nomad_operator.controllers.gitops.field_changes import scaling_groups

            changes = await source.engine.changes(action.desired.marked_job, action.key,
                                                  scaling=scaling_groups(action.desired.job))  # fmt: skip
            for change in changes:
                print(f"    {change}", file=out)
    counts = plan.counts()
    print(f"{counts['create']} to create, {counts['update'] + counts['adopt']} to update, {counts['prune']} to stop, "
          f"{counts['unchanged']} unchanged, {counts['conflict']} conflict(s), {counts['blocked']} blocked", file=out)


def handle_status(args: argparse.Namespace) -> int:
    try:
        documents = asyncio.run(_fetch_status(args.server))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        print(f"error: cannot read status from {args.server}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.name:
        documents = {k: v for k, v in documents.items() if args.name in (k, k.split("/", 1)[-1])}
        if not documents:
            print(f"error: no source {args.name!r} on {args.server}", file=sys.stderr)
            return EXIT_ERROR
    print(render_status_table(documents))
    return EXIT_NO_CHANGES


async def _fetch_status(server: str) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=STATUS_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(f"{server.rstrip('/')}/status") as answer:
        answer.raise_for_status()
        body = await answer.json()
    if not isinstance(body, dict):
        raise ValueError("the status answer is not a JSON object")
    return body


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def render_status_table(documents: dict[str, Any]) -> str:
    """One block per source: its conditions and revisions, then a table of its jobs."""
    lines: list[str] = []
    for source, status in sorted(documents.items()):
        ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        lines.append(f"SOURCE {source}  Ready={ready.get('status', 'Unknown')} ({ready.get('reason', '')})  "
                     f"health={status.get('health')}  applied={str(status.get('lastAppliedRevision') or '-')[:12]}  "
                     f"fetched={str(status.get('lastFetchedRevision') or '-')[:12]}")  # fmt: skip
        if ready.get("message"):
            lines.append(f"  {ready['message']}")
        if status.get("lastError"):
            lines.append(f"  last error: {status['lastError']}")
        rows = [["JOB", "NAMESPACE", "SYNC", "HEALTH", "PATH", "MESSAGE"]]
        for job in status.get("jobs") or []:
            rows.append([str(job.get("id")), str(job.get("namespace")), str(job.get("sync")), str(job.get("health")),
                         str(job.get("path", "")), str(job.get("message", ""))[:80]])  # fmt: skip
        lines += ["  " + line for line in _table(rows)]
        for path, error in sorted((status.get("fileErrors") or {}).items()):
            lines.append(f"  file {path}: {str(error).splitlines()[0] if error else ''}")
        history = status.get("history") or []
        if history:
            lines.append("  last syncs: " + ", ".join(
                f"{h.get('revision')} {h.get('result')} {h.get('durationSeconds')}s" for h in history[:5]))
    return "\n".join(lines) if lines else "no sources"
