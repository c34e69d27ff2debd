"""The ACL token to send, re-read from its file whenever the file changes.

Tokens rotate (a Vault agent or a Nomad workload identity rewrites the file); an operator that read its token once at
start would then fail every request with 403 until someone restarts it. Checking the file's identity (inode, size,
modification time) on every request costs one `stat()` and picks up a new token on the next call. The hazards: a
rotation that deletes and re-creates the file, or truncates before writing, leaves a moment with no file or an empty
one. Then the last good token is kept (and a warning logged once) instead of sending no token at all. A token file
that never produced a token is a configuration error, raised with the file's name and never its content.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from nomad_operator.nomad.errors import ConfigurationError

logger = logging.getLogger(__name__)

_FileIdentity = tuple[int, int, int, int]  # inode, device, size, mtime in ns


class TokenSource:
    """Gives the current token: from the token file when one is set (re-read on change), else the fixed token."""

    def __init__(self, *, token: str | None, token_file: Path | None) -> None:
        self._fixed = token
        self._file = token_file
        self._identity: _FileIdentity | None = None
        self._cached: str | None = None
        self._warned = False

    def current(self) -> str | None:
        """The token for the next request, or None when no token is configured."""
        if self._file is None:
            return self._fixed
        try:
            stat = os.stat(self._file)
        except OSError as error:
            return self._keep_last(f"cannot stat the token file {self._file}: {error.strerror}")
        identity = (stat.st_ino, stat.st_dev, stat.st_size, stat.st_mtime_ns)
        if identity == self._identity:
            return self._cached
        try:
            token = self._file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            return self._keep_last(f"cannot read the token file {self._file}: {_reason(error)}")
        if not token:
            return self._keep_last(f"the token file {self._file} is empty")
        if "\n" in token or "\r" in token:
            # A header value with a newline would be rejected by aiohttp (or worse, split the header).
            return self._keep_last(f"the token file {self._file} holds more than one line")
        if self._cached is not None and token != self._cached:
            logger.info("the token file %s changed; using the new token", self._file)
        self._identity = identity
        self._cached = token
        self._warned = False
        return token

    def redact(self, text: str) -> str:
        """`text` with every token we know replaced, for error messages built from answers we do not control."""
        for secret in (self._fixed, self._cached):
            if secret:
                text = text.replace(secret, "<redacted>")
        return text

    def _keep_last(self, problem: str) -> str:
        if self._cached is None:
            raise ConfigurationError(problem)
        if not self._warned:
            logger.warning("%s; keeping the last token read", problem)
            self._warned = True
        return self._cached


def _reason(error: OSError | UnicodeDecodeError) -> str:
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return "not UTF-8 text"
