"""`nomad-operator run`: the long-running operator, its flags and environment, handed to the assembly.

Single-source mode (`--repo` or NOMAD_OPERATOR_REPO) builds the GitSource in memory, so a fresh cluster can be
bootstrapped before any resource exists: that is how `jobs/nomad-operator.nomad` runs it. Without a repository the
process serves every GitSource resource of the store (resource mode). Either way it runs the GitOps and node
controllers on the runtime's Operator (`controllers.assembly`): the leader writes, a standby keeps its caches warm and
forwards webhooks to the leader; `/hooks/<name>`, `/metrics`, `/healthz`, `/readyz` and `/status` are served, and
SIGTERM stops the loops, releases the lock and closes the server within Nomad's kill timeout.

Every setting is checked before anything starts, and a setting that cannot work exits 255 with its name.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from nomad_operator.controllers.gitops.cli_source import (
    CliConfigError,
    add_source_arguments,
    git_auth_from_environment,
    listen_address,
    spec_from_arguments,
    webhook_secret_file,
)
from nomad_operator.controllers.gitops.git_errors import GitSourceError
from nomad_operator.nomad import NomadError, NomadSettings
from nomad_operator.runtime.errors import KindDefinitionError
from nomad_operator.runtime.kinds import KindRegistry, load_kinds
from nomad_operator.runtime.leader_timing import ElectionSettingsError, LeaderElectionConfig
from nomad_operator.server.webhooks import FileSecret, StaticSecret

if TYPE_CHECKING:  # the assembly pulls in every controller: imported only when `run` runs
    from nomad_operator.controllers.assembly import ProcessConfig

EXIT_ERROR: Final = 255
ENV_CRDS: Final = "NOMAD_OPERATOR_CRDS"
ENV_ADVERTISE: Final = "NOMAD_OPERATOR_ADVERTISE"
ENV_LEADER_TIME_SCALE: Final = "NOMAD_OPERATOR_LEADER_TIME_SCALE"
"""For the simulator only: its lock timers may run faster (`lock_time_scale`), and the elector must match them."""
CRDS_CANDIDATES: Final = (Path("crds"), Path("/usr/share/nomad-operator/crds"))


def add_run_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser(
        "run", help="run the operator: GitOps and node controllers, webhooks, metrics (--repo for one source)"
    )
    add_source_arguments(run)
    run.add_argument(
        "--webhook-secret-file", help="file holding the webhook secret (env NOMAD_OPERATOR_WEBHOOK_SECRET_FILE)"
    )
    run.add_argument("--listen", help="HOST:PORT of the HTTP server (NOMAD_OPERATOR_LISTEN; default 127.0.0.1:8080)")
    run.add_argument("--advertise", help=f"URL where other replicas reach this one, for webhooks ({ENV_ADVERTISE})")
    run.add_argument("--workdir", type=Path, help="where working copies live (default: a temporary folder)")
    run.add_argument("--crds", type=Path, help=f"folder of the kind files, resource mode ({ENV_CRDS}; default ./crds)")
    run.set_defaults(handler=handle_run)


def handle_run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = process_config(args)
    except (CliConfigError, GitSourceError, NomadError, ElectionSettingsError, KindDefinitionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    from nomad_operator.controllers.assembly import run_process

    try:
        asyncio.run(run_process(config))
    except KeyboardInterrupt:
        return 0
    return 0


def leader_config(environ: Mapping[str, str] = os.environ) -> LeaderElectionConfig:
    config = LeaderElectionConfig.from_env(environ)
    text = environ.get(ENV_LEADER_TIME_SCALE, "").strip()
    if not text:
        return config
    try:
        scale = float(text)
    except ValueError:
        raise CliConfigError(f"{ENV_LEADER_TIME_SCALE} must be a number in (0, 1], got {text!r}") from None
    if not 0 < scale <= 1:
        raise CliConfigError(f"{ENV_LEADER_TIME_SCALE} must be a number in (0, 1], got {text!r}")
    return dataclasses.replace(config, time_scale=scale)


def find_kinds(option: Path | None, environ: Mapping[str, str] = os.environ) -> KindRegistry:
    """The kind files for resource mode: --crds, NOMAD_OPERATOR_CRDS, ./crds, or the image's copy."""
    chosen = option or (Path(environ[ENV_CRDS]) if environ.get(ENV_CRDS, "").strip() else None)
    candidates = (chosen,) if chosen is not None else CRDS_CANDIDATES
    for folder in candidates:
        if folder.is_dir():
            return load_kinds(folder)
    where = ", ".join(str(folder) for folder in candidates)
    raise CliConfigError(f"resource mode needs the kind files (crds/); none found at {where}: give --crds DIR, set "
                         f"{ENV_CRDS}, or give --repo URL for single-source mode")  # fmt: skip


def process_config(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> ProcessConfig:
    """The ProcessConfig of the flags and environment; CliConfigError (and friends) name what cannot work."""
    from nomad_operator.controllers.assembly import ProcessConfig, SingleSource

    host, port = listen_address(args, environ)
    settings = NomadSettings.from_env(environ)
    advertise = getattr(args, "advertise", None) or environ.get(ENV_ADVERTISE, "").strip() or None
    leader = leader_config(environ)
    if not (args.repo or environ.get("NOMAD_OPERATOR_REPO", "").strip()):
        kinds = find_kinds(getattr(args, "crds", None), environ)
        return ProcessConfig(nomad=settings, host=host, port=port, advertise=advertise, workdir=args.workdir,
                             leader=leader, kinds=kinds)  # fmt: skip
    spec = spec_from_arguments(args, environ)
    secret_path = webhook_secret_file(args, environ)
    secret = FileSecret(secret_path) if secret_path is not None else StaticSecret(None)
    single = SingleSource(spec=spec, auth=git_auth_from_environment(environ), webhook_secret=secret)
    return ProcessConfig(nomad=settings, host=host, port=port, advertise=advertise, workdir=args.workdir,
                         leader=leader, single=single)  # fmt: skip
