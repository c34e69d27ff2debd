"""The source a CLI command works on: `--repo/--ref/--path/...` flags with their NOMAD_OPERATOR_* environment twins.

The operator's own job file passes every setting through the environment (secrets as file paths), so each flag has
an environment variable, flags win, and a setting that cannot work (a token file that is missing, an SSH key without
known_hosts) is refused at start with the variable's name, not later as a confusing git error. Secrets are read
from files only: never from a flag, where they would show in the process list.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from nomad_operator.controllers.gitops.git_errors import SourceConfigError
from nomad_operator.controllers.gitops.gitauth import GitAuth, HttpsTokenAuth, NoAuth, SshKeyAuth
from nomad_operator.controllers.gitops.pathglobs import DEFAULT_JOB_GLOBS
from nomad_operator.controllers.gitops.source_secrets import read_secret_file
from nomad_operator.controllers.gitops.source_spec import GitSourceSpec, SourceSpecError, spec_from_resource

ENV_REPO = "NOMAD_OPERATOR_REPO"
ENV_REF = "NOMAD_OPERATOR_REF"
ENV_PATH = "NOMAD_OPERATOR_PATH"
ENV_NAME = "NOMAD_OPERATOR_NAME"
ENV_WEBHOOK_SECRET_FILE = "NOMAD_OPERATOR_WEBHOOK_SECRET_FILE"
ENV_PRUNE = "NOMAD_OPERATOR_PRUNE"
ENV_LISTEN = "NOMAD_OPERATOR_LISTEN"
ENV_TOKEN_FILE = "NOMAD_OPERATOR_GIT_TOKEN_FILE"
ENV_SSH_KEY_FILE = "NOMAD_OPERATOR_GIT_SSH_KEY_FILE"
ENV_KNOWN_HOSTS_FILE = "NOMAD_OPERATOR_GIT_KNOWN_HOSTS_FILE"
ENV_INTERVAL = "NOMAD_OPERATOR_INTERVAL"
DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_NAME = "default"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


class CliConfigError(ValueError):
    """A flag or environment variable that cannot work; the message names it."""


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", help=f"git URL of the repository (env {ENV_REPO})")
    parser.add_argument("--ref", help=f"branch, tag or commit (default main; env {ENV_REF})")
    parser.add_argument(
        "--path", action="append", dest="paths", metavar="GLOB",
        help=f"job file glob, repeatable (default {' '.join(DEFAULT_JOB_GLOBS)}; env {ENV_PATH})",
    )  # fmt: skip
    parser.add_argument("--name", help=f"the source's name (default {DEFAULT_NAME}; env {ENV_NAME})")
    parser.add_argument(
        "--prune", action="store_true", default=None, help=f"stop owned jobs that left git (env {ENV_PRUNE})"
    )
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="an input variable")
    parser.add_argument("--interval", help=f"poll interval, e.g. 60s (env {ENV_INTERVAL})")
    parser.add_argument("--prune-grace", help="how long a job must be gone from git before it is stopped")
    parser.add_argument("--adopt", action="store_true", help="take over existing jobs without owner meta")
    parser.add_argument("--no-parse-check", action="store_true", help="skip the check against /v1/jobs/parse")


def _env_bool(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise CliConfigError(f"{name} must be true or false, got {value!r}")


def spec_from_arguments(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> GitSourceSpec:
    """The single source described by flags and environment; CliConfigError names what is wrong."""
    url = args.repo or environ.get(ENV_REPO, "").strip()
    if not url:
        raise CliConfigError(f"no repository: give --repo URL or set {ENV_REPO}")
    paths = args.paths or [p for p in environ.get(ENV_PATH, "").split(",") if p.strip()] or list(DEFAULT_JOB_GLOBS)
    variables: dict[str, str] = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliConfigError(f"--var {item!r} must be NAME=VALUE")
        variables[name] = value
    spec: dict[str, object] = {"url": url, "ref": args.ref or environ.get(ENV_REF, "").strip() or "main",
                               "paths": [p.strip() for p in paths], "variables": variables,
                               "prune": args.prune if args.prune is not None else _env_bool(environ, ENV_PRUNE),
                               "adopt": bool(args.adopt), "parseCheck": not args.no_parse_check}  # fmt: skip
    interval = args.interval or environ.get(ENV_INTERVAL, "").strip()
    if interval:
        spec["interval"] = interval
    if args.prune_grace:
        spec["pruneGracePeriod"] = args.prune_grace
    name = args.name or environ.get(ENV_NAME, "").strip() or DEFAULT_NAME
    try:
        return spec_from_resource(name=name, namespace="default", spec=spec)
    except SourceSpecError as exc:
        raise CliConfigError(str(exc)) from None


def git_auth_from_environment(environ: Mapping[str, str] = os.environ) -> GitAuth:
    """The git credentials named by the NOMAD_OPERATOR_GIT_* file variables; CliConfigError names what is wrong."""
    try:
        return _git_auth_from_files(environ)
    except SourceConfigError as exc:
        raise CliConfigError(str(exc)) from None


def _git_auth_from_files(environ: Mapping[str, str]) -> GitAuth:
    token_file = environ.get(ENV_TOKEN_FILE, "").strip()
    key_file = environ.get(ENV_SSH_KEY_FILE, "").strip()
    hosts_file = environ.get(ENV_KNOWN_HOSTS_FILE, "").strip()
    if token_file and key_file:
        raise CliConfigError(f"set {ENV_TOKEN_FILE} or {ENV_SSH_KEY_FILE}, not both")
    if token_file:
        return HttpsTokenAuth(token=read_secret_file(token_file, what=ENV_TOKEN_FILE))
    if key_file:
        if not hosts_file:
            raise CliConfigError(f"{ENV_SSH_KEY_FILE} needs {ENV_KNOWN_HOSTS_FILE}: host keys are always checked")
        return SshKeyAuth(private_key=read_secret_file(key_file, what=ENV_SSH_KEY_FILE),
                          known_hosts=read_secret_file(hosts_file, what=ENV_KNOWN_HOSTS_FILE))  # fmt: skip
    return NoAuth()


def webhook_secret_file(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Path | None:
    value = getattr(args, "webhook_secret_file", None) or environ.get(ENV_WEBHOOK_SECRET_FILE, "").strip()
    return Path(value) if value else None


def listen_address(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> tuple[str, int]:
    text = getattr(args, "listen", None) or environ.get(ENV_LISTEN, "").strip() or DEFAULT_LISTEN
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CliConfigError(f"--listen / {ENV_LISTEN} must be HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)
