"""A GitSource's secrets, resolved where its spec says: git credentials and the webhook secret, from a Nomad Variable
or a file, through the operator's own client.

Secrets never live in the spec, which anyone who can read resources can read, and never reach a log, a status or an
exception text (DESIGN rule 6): errors here name the Variable and the item, never a value. The hazards:
- **a credential that cannot work** (an HTTPS token for a plain http:// URL, an SSH key without known_hosts) is
  refused when the source starts, as `SourceConfigError`, so the source is Stalled with a reason a person can act on;
- **a secret store that is down** must not turn into "no secret" (which would refuse every webhook with a misleading
  403, or worse, fall back to no auth): a failed read raises, and the receiver answers 503;
- **a flood of webhooks** must not become a flood of Variable reads: the webhook secret is kept `SECRET_CACHE_SECONDS`,
  so a rotated secret is picked up within seconds, and a thousand requests cost one read;
- **a secret file that is not one** (a device, a huge file given by mistake) is read only up to
  `MAX_SECRET_FILE_BYTES`; `read_secret_file` is the one reader of secret files, for the CLI's environment too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from nomad_operator.controllers.gitops.git_errors import SourceConfigError
from nomad_operator.controllers.gitops.gitauth import (
    DEFAULT_TOKEN_USERNAME,
    GitAuth,
    HttpsTokenAuth,
    NoAuth,
    SshKeyAuth,
)
from nomad_operator.controllers.gitops.source_spec import GitAuthRef, GitSourceSpec
from nomad_operator.nomad import NomadError, NotFound, QueryResult
from nomad_operator.nomad.results import JSONObject
from nomad_operator.server.webhooks import FileSecret, SecretGetter, StaticSecret

SECRET_CACHE_SECONDS: Final = 5.0
MAX_SECRET_FILE_BYTES: Final = 64 * 1024
TOKEN_ITEM: Final = "token"
SSH_KEY_ITEM: Final = "ssh_key"
KNOWN_HOSTS_ITEM: Final = "known_hosts"
USERNAME_ITEM: Final = "username"


class VariableReader(Protocol):
    async def read_variable(self, path: str) -> QueryResult[JSONObject]: ...


async def variable_items(nomad: VariableReader, path: str) -> Mapping[str, Any]:
    """The items of a Variable; SourceConfigError when it is missing (a read failure is a NomadError)."""
    try:
        variable = (await nomad.read_variable(path)).value
    except NotFound:
        raise SourceConfigError(f"the Nomad Variable {path!r} does not exist") from None
    items = variable.get("Items")
    return items if isinstance(items, Mapping) else {}


def read_secret_file(path: str, *, what: str) -> str:
    """The text of a secret file (at most MAX_SECRET_FILE_BYTES, stripped); SourceConfigError names `what` and the
    path, never the content."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise SourceConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SourceConfigError(f"{what}: {path} is larger than {MAX_SECRET_FILE_BYTES} bytes")
    return data.decode("utf-8", "replace").strip()


async def resolve_git_auth(spec: GitSourceSpec, nomad: VariableReader) -> GitAuth:
    """The git credentials of `spec` (NoAuth without an `auth` block); checked against the URL before use."""
    ref = spec.auth
    if ref is None:
        return NoAuth()
    auth = await _auth_from(ref, nomad)
    auth.check(spec.url)
    return auth


async def _auth_from(ref: GitAuthRef, nomad: VariableReader) -> GitAuth:
    token = key = hosts = None
    username = ref.username
    if ref.variable is not None:
        items = await variable_items(nomad, ref.variable)
        token, key, hosts = items.get(TOKEN_ITEM), items.get(SSH_KEY_ITEM), items.get(KNOWN_HOSTS_ITEM)
        username = username or items.get(USERNAME_ITEM)
        where = f"Variable {ref.variable!r}"
    else:
        where = "auth files"
    if ref.token_file is not None:
        token = read_secret_file(ref.token_file, what="auth.tokenFile")
    if ref.ssh_key_file is not None:
        key = read_secret_file(ref.ssh_key_file, what="auth.sshKeyFile")
    if ref.known_hosts_file is not None:
        hosts = read_secret_file(ref.known_hosts_file, what="auth.knownHostsFile")
    if token and key:
        raise SourceConfigError(f"{where}: give a token or an SSH key, not both")
    if token:
        return HttpsTokenAuth(token=str(token), username=str(username or DEFAULT_TOKEN_USERNAME))
    if key:
        if not hosts:
            raise SourceConfigError(f"{where}: an SSH key needs known_hosts: host keys are always checked")
        return SshKeyAuth(private_key=str(key), known_hosts=str(hosts))
    raise SourceConfigError(
        f"{where}: no credentials found (items {TOKEN_ITEM!r}, or {SSH_KEY_ITEM!r} and {KNOWN_HOSTS_ITEM!r})"
    )


class VariableSecret:
    """A webhook secret from an item of a Nomad Variable, kept a few seconds; a failed read raises (503)."""

    def __init__(
        self, nomad: VariableReader, *, path: str, item: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._nomad = nomad
        self.path = path
        self.item = item
        self._clock = clock
        self._value: str | None = None
        self._read_at: float | None = None
        self._lock = asyncio.Lock()
        self.reads = 0

    def __repr__(self) -> str:
        return f"VariableSecret(path={self.path!r}, item={self.item!r})"

    async def __call__(self) -> str | None:
        async with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= SECRET_CACHE_SECONDS:
                self.reads += 1
                try:
                    items = await variable_items(self._nomad, self.path)
                except SourceConfigError:
                    items = {}  # no Variable: no secret, and every webhook is refused (403)
                except NomadError as exc:
                    raise RuntimeError(f"cannot read the webhook secret's Variable {self.path!r}") from exc
                value = items.get(self.item)
                self._value = str(value) if value else None
                self._read_at = now
            return self._value


def webhook_secret_for(spec: GitSourceSpec, nomad: VariableReader) -> SecretGetter:
    """Where the webhook receiver reads this source's secret; without a setting there is none (all refused)."""
    ref = spec.webhook_secret
    if ref is None:
        return StaticSecret(None)
    if ref.file is not None:
        return FileSecret(Path(ref.file))
    assert ref.variable is not None
    return VariableSecret(nomad, path=ref.variable, item=ref.item)
