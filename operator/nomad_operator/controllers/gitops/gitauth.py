"""Credentials for git remotes, handed to each git command through its environment and nowhere else.

The usual ways to give git a token leak it: a URL with `user:token@` is stored in `.git/config` and shows up in every
error message and process list, and a credential helper may write it to `~/.git-credentials`. Here a token travels as
an `http.extraHeader` set through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` for one command, so it
is in no file, no argv and no URL, and redirects are not followed (git would send the header to the new host). A
token over plain `http://` is refused: it would cross the network in clear text. SSH keys are written to a private
temporary folder (mode 0700, key 0600) only while a command runs, and ssh always checks host keys against the
known_hosts given with the key (`StrictHostKeyChecking=yes`, no user or system ssh config read). `repr()` of these
objects shows no secret.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from nomad_operator.controllers.gitops.git_errors import SourceConfigError

DEFAULT_TOKEN_USERNAME = "x-access-token"  # GitHub's; GitLab takes "oauth2", Bitbucket "x-token-auth"

# git never asks a terminal for a password: an operator has none, and a prompt would hang the fetch forever.
BASE_GIT_ENVIRONMENT: dict[str, str] = {"GIT_TERMINAL_PROMPT": "0"}

_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?[^/:]+:(?!//)")


def url_scheme(url: str) -> str:
    """The transport of a git URL: "https", "http", "ssh", "git", "file", or "ssh" for scp-like `git@host:path`."""
    if "://" in url:
        return urlsplit(url).scheme.lower()
    if _SCP_LIKE.match(url):
        return "ssh"
    return "file"


def redact_url(url: str) -> str:
    """The URL with any user-info password removed, for logs and messages."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def check_url(url: str) -> None:
    """Refuse URLs that would put a credential on disk or in logs."""
    if not url or url != url.strip() or any(c in url for c in "\0\n\r"):
        raise SourceConfigError("repository URL is empty or has spaces or control characters")
    if "://" in url and urlsplit(url).password is not None:
        raise SourceConfigError(
            f"repository URL {redact_url(url)} embeds a password or token; give it as the source's auth instead"
        )


class GitAuth(Protocol):
    """Credentials for one remote: checked against its URL once, then turned into a command environment."""

    def check(self, url: str) -> None:
        """Raise SourceConfigError when these credentials must not be used with `url`."""
        ...

    def environment(self) -> AbstractContextManager[dict[str, str]]:
        """A context giving the environment variables for one git command; temporary files live as long as it."""
        ...


@dataclass(frozen=True)
class NoAuth:
    """Anonymous access: public repositories, `file://`, `git://`."""

    def check(self, url: str) -> None:
        return None

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        yield {}


@dataclass(frozen=True)
class HttpsTokenAuth:
    """A token sent as HTTP basic auth over https only."""

    token: str = field(repr=False)
    username: str = DEFAULT_TOKEN_USERNAME

    def __post_init__(self) -> None:
        if not self.token:
            raise SourceConfigError("the HTTPS token is empty")
        if any(c in self.token + self.username for c in "\0\r\n"):
            raise SourceConfigError("the HTTPS token or username contains a line break or NUL")
        if ":" in self.username:
            raise SourceConfigError("the HTTPS token username must not contain ':'")

    def __repr__(self) -> str:
        return f"HttpsTokenAuth(username={self.username!r}, token=***)"

    def check(self, url: str) -> None:
        scheme = url_scheme(url)
        if scheme == "http":
            raise SourceConfigError(
                f"HTTPS token refused for plain http:// URL {redact_url(url)}: the token would travel unencrypted; "
                "use an https:// URL"
            )
        if scheme != "https":
            raise SourceConfigError(f"an HTTPS token needs an https:// URL, not {scheme} ({redact_url(url)})")

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        basic = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
        yield {
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            "GIT_CONFIG_KEY_1": "http.followRedirects",
            "GIT_CONFIG_VALUE_1": "false",
        }


@dataclass(frozen=True)
class SshKeyAuth:
    """An SSH private key and the known_hosts lines that the server's host key must match."""

    private_key: str = field(repr=False)
    known_hosts: str
    ssh_executable: str = "ssh"

    def __post_init__(self) -> None:
        if "PRIVATE KEY" not in self.private_key:
            raise SourceConfigError("the SSH private key is not a PEM/OpenSSH private key")
        if not any(line.strip() and not line.lstrip().startswith("#") for line in self.known_hosts.splitlines()):
            raise SourceConfigError("SSH auth needs known_hosts: host keys are always checked")

    def __repr__(self) -> str:
        return f"SshKeyAuth(private_key=***, known_hosts=<{len(self.known_hosts.splitlines())} lines>)"

    def check(self, url: str) -> None:
        scheme = url_scheme(url)
        if scheme != "ssh":
            raise SourceConfigError(f"an SSH key needs an ssh:// or user@host:path URL, not {scheme}")

    def ssh_command(self, *, key_path: str, known_hosts_path: str) -> str:
        """The GIT_SSH_COMMAND: this key only, this known_hosts only, no prompts, no user or system ssh config."""
        return " ".join(
            [
                shlex.quote(self.ssh_executable),
                "-F",
                "/dev/null",
                "-i",
                shlex.quote(key_path),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                f"UserKnownHostsFile={shlex.quote(known_hosts_path)}",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
            ]
        )

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        with tempfile.TemporaryDirectory(prefix="nomad-operator-ssh-") as folder:
            os.chmod(folder, 0o700)
            key_path = os.path.join(folder, "id")
            known_hosts_path = os.path.join(folder, "known_hosts")
            key_text = self.private_key if self.private_key.endswith("\n") else self.private_key + "\n"
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as key_file:
                key_file.write(key_text)  # OpenSSH rejects a key without its final newline
            with open(known_hosts_path, "w") as hosts_file:
                hosts_file.write(self.known_hosts if self.known_hosts.endswith("\n") else self.known_hosts + "\n")
            yield {"GIT_SSH_COMMAND": self.ssh_command(key_path=key_path, known_hosts_path=known_hosts_path)}
