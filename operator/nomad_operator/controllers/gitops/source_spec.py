"""A GitSource's spec as a typed value, read from the resource document or the CLI, with every problem named.

The spec arrives as JSON from a Nomad Variable (written by a person) or from flags and environment variables. A
misspelled field or a negative grace period must never fall back to a default that prunes or adopts: every problem
is collected and raised at once in `SourceSpecError`, and the defaults that decide safety (prune off, adopt off,
allowed namespaces `default` only) are the ones from `defaults`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nomad_operator.controllers.gitops.defaults import (
    DEFAULT_ALLOWED_NAMESPACES,
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_MAX_PRUNE_SHARE,
    DEFAULT_PRUNE_GRACE_SECONDS,
    DEFAULT_WAVE_TIMEOUT_SECONDS,
)
from nomad_operator.controllers.gitops.owner_meta import source_id
from nomad_operator.controllers.gitops.pathglobs import DEFAULT_JOB_GLOBS, InvalidGlob, PathGlobs
from nomad_operator.durations import parse_duration, to_seconds


class SourceSpecError(ValueError):
    """A GitSource spec that cannot be used; `problems` lists every reason."""

    def __init__(self, name: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"GitSource {name}: " + "; ".join(self.problems))


@dataclass(frozen=True, kw_only=True)
class WebhookSecretRef:
    """Where the webhook secret lives: a file, or an item of a Nomad Variable."""

    file: str | None = None
    variable: str | None = None
    item: str = "webhook_secret"


@dataclass(frozen=True, kw_only=True)
class GitAuthRef:
    """Where the git credentials live: a Nomad Variable (items token / ssh_key / known_hosts) or files."""

    variable: str | None = None
    token_file: str | None = None
    ssh_key_file: str | None = None
    known_hosts_file: str | None = None
    username: str | None = None


@dataclass(frozen=True, kw_only=True)
class GitSourceSpec:
    """Everything one source's sync depends on."""

    name: str
    namespace: str = "default"
    url: str
    ref: str = "main"
    paths: tuple[str, ...] = DEFAULT_JOB_GLOBS
    var_files: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    interval: float = DEFAULT_INTERVAL_SECONDS
    prune: bool = False
    prune_grace: float = DEFAULT_PRUNE_GRACE_SECONDS
    max_prune_share: float = DEFAULT_MAX_PRUNE_SHARE
    force_prune: bool = False
    purge: bool = False
    allowed_namespaces: tuple[str, ...] = DEFAULT_ALLOWED_NAMESPACES
    adopt: bool = False
    suspend: bool = False
    self_heal: bool = True
    parse_check: bool = True
    wave_timeout: float = DEFAULT_WAVE_TIMEOUT_SECONDS
    requested_at: str | None = None
    webhook_secret: WebhookSecretRef | None = None
    auth: GitAuthRef | None = None

    @property
    def source_id(self) -> str:
        return source_id(self.namespace, self.name)

    @property
    def globs(self) -> PathGlobs:
        return PathGlobs.of(self.paths)

    def namespace_allowed(self, namespace: str) -> bool:
        return "*" in self.allowed_namespaces or namespace in self.allowed_namespaces


_KNOWN = {
    "url", "ref", "branch", "paths", "path", "varFiles", "variables", "interval", "prune", "pruneGracePeriod",
    "pruneMaxShare", "pruneForce", "purge", "allowedNamespaces", "adopt", "suspend", "selfHeal", "parseCheck",
    "waveTimeout", "requestedAt", "webhookSecret", "auth",
}  # fmt: skip


def _seconds(value: Any, what: str, problems: list[str], *, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool):
        problems.append(f"{what} must be a duration such as '60s', got {value!r}")
        return default
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = to_seconds(parse_duration(value))
        except ValueError as exc:
            problems.append(f"{what}: {exc}")
            return default
    else:
        problems.append(f"{what} must be a duration such as '60s', got {type(value).__name__}")
        return default
    if seconds < 0:
        problems.append(f"{what} must not be negative, got {value!r}")
        return default
    return seconds


def _flag(spec: Mapping[str, Any], key: str, problems: list[str], *, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"{key} must be true or false, got {value!r}")
        return default
    return value


def _strings(value: Any, what: str, problems: list[str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
        return tuple(value)
    problems.append(f"{what} must be a list of non-empty strings")
    return None


def spec_from_resource(*, name: str, namespace: str, spec: Mapping[str, Any]) -> GitSourceSpec:
    """The typed spec of a GitSource resource; SourceSpecError lists every problem."""
    problems: list[str] = [f"unknown field {key!r}" for key in spec if key not in _KNOWN]
    url = spec.get("url")
    if not isinstance(url, str) or not url:
        problems.append("url is required")
        url = ""
    ref = spec.get("ref", spec.get("branch", "main"))
    if not isinstance(ref, str) or not ref:
        problems.append("ref must be a branch, tag or commit")
        ref = "main"
    paths = _strings(spec.get("paths", spec.get("path")), "paths", problems) or DEFAULT_JOB_GLOBS
    try:
        PathGlobs.of(paths)
    except InvalidGlob as exc:
        problems.append(str(exc))
    variables = spec.get("variables") or {}
    scalar = str | int | float | bool
    if not isinstance(variables, Mapping) or not all(isinstance(v, scalar) for v in variables.values()):
        problems.append("variables must map names to strings")
        variables = {}
    share = spec.get("pruneMaxShare", DEFAULT_MAX_PRUNE_SHARE)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        problems.append(f"pruneMaxShare must be a number in (0, 1], got {share!r}")
        share = DEFAULT_MAX_PRUNE_SHARE
    requested_at = spec.get("requestedAt")
    if requested_at is not None and not isinstance(requested_at, str):
        problems.append("requestedAt must be a string (a time or any token that changes)")
        requested_at = None
    secret = _webhook_secret(spec.get("webhookSecret"), problems)
    auth = _auth(spec.get("auth"), problems)
    parsed = GitSourceSpec(
        name=name,
        namespace=namespace,
        url=url,
        ref=ref,
        paths=paths,
        var_files=_strings(spec.get("varFiles"), "varFiles", problems) or (),
        variables={str(k): _text(v) for k, v in variables.items()},
        interval=_seconds(spec.get("interval"), "interval", problems, default=DEFAULT_INTERVAL_SECONDS),
        prune=_flag(spec, "prune", problems, default=False),
        prune_grace=_seconds(
            spec.get("pruneGracePeriod"), "pruneGracePeriod", problems, default=DEFAULT_PRUNE_GRACE_SECONDS
        ),
        max_prune_share=float(share),
        force_prune=_flag(spec, "pruneForce", problems, default=False),
        purge=_flag(spec, "purge", problems, default=False),
        allowed_namespaces=_strings(spec.get("allowedNamespaces"), "allowedNamespaces", problems)
        or DEFAULT_ALLOWED_NAMESPACES,
        adopt=_flag(spec, "adopt", problems, default=False),
        suspend=_flag(spec, "suspend", problems, default=False),
        self_heal=_flag(spec, "selfHeal", problems, default=True),
        parse_check=_flag(spec, "parseCheck", problems, default=True),
        wave_timeout=_seconds(spec.get("waveTimeout"), "waveTimeout", problems, default=DEFAULT_WAVE_TIMEOUT_SECONDS),
        requested_at=requested_at,
        webhook_secret=secret,
        auth=auth,
    )
    if parsed.interval == 0:
        problems.append("interval must be greater than 0")
    if problems:
        raise SourceSpecError(source_id(namespace, name), problems)
    return parsed


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _webhook_secret(value: Any, problems: list[str]) -> WebhookSecretRef | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"file", "variable", "item"}:
        problems.append("webhookSecret must be {file: PATH} or {variable: PATH, item: NAME}")
        return None
    file, variable, item = value.get("file"), value.get("variable"), value.get("item", "webhook_secret")
    if (file is None) == (variable is None):
        problems.append("webhookSecret needs exactly one of file or variable")
        return None
    return WebhookSecretRef(file=file, variable=variable, item=str(item))


def _auth(value: Any, problems: list[str]) -> GitAuthRef | None:
    if value is None:
        return None
    allowed = {"variable", "tokenFile", "sshKeyFile", "knownHostsFile", "username"}
    if not isinstance(value, Mapping) or set(value) - allowed or not all(isinstance(v, str) for v in value.values()):
        problems.append(f"auth must be an object with string fields among {sorted(allowed)}")
        return None
    return GitAuthRef(
        variable=value.get("variable"),
        token_file=value.get("tokenFile"),
        ssh_key_file=value.get("sshKeyFile"),
        known_hosts_file=value.get("knownHostsFile"),
        username=value.get("username"),
    )
