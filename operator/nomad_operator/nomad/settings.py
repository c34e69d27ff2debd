"""Where Nomad is and how to talk to it, read from the same environment as the nomad CLI.

Operators already have NOMAD_ADDR, NOMAD_TOKEN and the TLS variables set for the CLI; reading the same names means the
operator points at the same cluster with the same credentials as the person running it. The hazards handled here:
a malformed setting is caught at start with a message naming the variable (not as a confusing connection error
later), TLS verification is on unless explicitly skipped (python-nomad defaults it off), and the token never shows in
`repr()`, so settings can be logged.

NOMAD_TOKEN_FILE is our own addition: a file holding the token, re-read whenever it changes, so a token can rotate
without a restart (see `token_source.py`).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nomad_operator.nomad.defaults import DEFAULT_ADDRESS
from nomad_operator.nomad.errors import ConfigurationError

_SCHEMES = ("http://", "https://", "unix://")
# Go's strconv.ParseBool, which the nomad CLI uses for NOMAD_SKIP_VERIFY.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


@dataclass(frozen=True, kw_only=True)
class NomadSettings:
    """Connection settings for one Nomad cluster. The token is kept out of `repr()` on purpose."""

    address: str = DEFAULT_ADDRESS
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    namespace: str | None = None
    region: str | None = None
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    skip_verify: bool = False
    tls_server_name: str | None = None

    def __post_init__(self) -> None:
        if not self.address.startswith(_SCHEMES):
            raise ConfigurationError(f"NOMAD_ADDR must start with http://, https:// or unix://, got {self.address!r}")
        if self.address.startswith("unix://") and len(self.address) == len("unix://"):
            raise ConfigurationError("NOMAD_ADDR unix:// needs a socket path, e.g. unix:///run/nomad.sock")
        if (self.client_cert is None) != (self.client_key is None):
            raise ConfigurationError("NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY must be set together")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> NomadSettings:
        """Settings from NOMAD_* variables; unset or empty variables keep the nomad CLI's defaults."""

        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        def path(name: str) -> Path | None:
            value = get(name)
            return Path(value) if value is not None else None

        address = get("NOMAD_ADDR") or DEFAULT_ADDRESS
        if address.startswith(("http://", "https://")):
            address = address.rstrip("/")
        return cls(
            address=address,
            token=get("NOMAD_TOKEN"),
            token_file=path("NOMAD_TOKEN_FILE"),
            namespace=get("NOMAD_NAMESPACE"),
            region=get("NOMAD_REGION"),
            ca_cert=path("NOMAD_CACERT"),
            client_cert=path("NOMAD_CLIENT_CERT"),
            client_key=path("NOMAD_CLIENT_KEY"),
            skip_verify=_parse_bool("NOMAD_SKIP_VERIFY", get("NOMAD_SKIP_VERIFY")),
            tls_server_name=get("NOMAD_TLS_SERVER_NAME"),
        )

    @property
    def unix_socket(self) -> str | None:
        """The socket path when NOMAD_ADDR is unix://..., else None."""
        if self.address.startswith("unix://"):
            return self.address[len("unix://") :]
        return None

    @property
    def base_url(self) -> str:
        """The URL that API paths are appended to (a unix socket is reached as http://localhost)."""
        return "http://localhost" if self.unix_socket is not None else self.address.rstrip("/")


def build_ssl_context(settings: NomadSettings) -> ssl.SSLContext | None:
    """The TLS context for the settings, or None for plain HTTP with no TLS setting (aiohttp's default then)."""
    wants_tls = settings.address.startswith("https://")
    if not wants_tls and settings.ca_cert is None and settings.client_cert is None and not settings.skip_verify:
        return None
    context = ssl.create_default_context()
    try:
        if settings.ca_cert is not None:
            if settings.ca_cert.is_dir():
                context.load_verify_locations(capath=str(settings.ca_cert))
            else:
                context.load_verify_locations(cafile=str(settings.ca_cert))
        if settings.client_cert is not None and settings.client_key is not None:
            context.load_cert_chain(str(settings.client_cert), str(settings.client_key))
    except (OSError, ssl.SSLError) as error:
        raise ConfigurationError(f"cannot load the TLS files of the Nomad settings: {error}") from error
    if settings.skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _parse_bool(name: str, value: str | None) -> bool:
    if value is None:
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be a boolean (true/false/1/0), got {value!r}")
