"""Credentials reach the git server and nothing else: not .git/config, not argv-built URLs, not errors or repr.

The HTTPS test runs git's smart-HTTP client against a real aiohttp server over TLS on 127.0.0.1 (a throwaway
certificate made with the openssl CLI) and looks at the Authorization header the server received. The SSH test puts a
stand-in `ssh` first on PATH that records how git called it, since no sshd can run here.
"""

from __future__ import annotations

import base64
import os
import ssl
import stat
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from nomad_operator.controllers.gitops.git_errors import FetchError, SourceConfigError
from nomad_operator.controllers.gitops.gitauth import HttpsTokenAuth, SshKeyAuth
from nomad_operator.controllers.gitops.repository import GitRepository

TOKEN = "tok-3f9a-very-secret"
FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nKEYMATERIALNOTFORLOGS\n-----END OPENSSH PRIVATE KEY-----"
KNOWN_HOSTS = "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleHostKeyForTests\n"


@dataclass
class Recorder:
    requests: list[tuple[str, str | None]] = field(default_factory=list)


async def start_site(app: web.Application, *, ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def https_git_server(
    certificate, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[int, Recorder, Recorder]]:
    """An HTTPS server that records each request's Authorization and redirects /moved.git to a second server."""
    cert, key = certificate
    monkeypatch.setenv("GIT_SSL_CAINFO", str(cert))
    main, other = Recorder(), Recorder()
    other_app = web.Application()

    async def record_other(request: web.Request) -> web.Response:
        other.requests.append((request.path, request.headers.get("Authorization")))
        return web.Response(status=404, text="not here")

    other_app.router.add_route("*", "/{tail:.*}", record_other)
    other_runner, other_port = await start_site(other_app)

    async def record_main(request: web.Request) -> web.Response:
        main.requests.append((request.path, request.headers.get("Authorization")))
        if request.path.startswith("/moved.git/"):
            raise web.HTTPFound(f"http://127.0.0.1:{other_port}{request.path_qs}")
        return web.Response(status=403, text="denied")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record_main)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner, port = await start_site(app, ssl_context=context)
    try:
        yield port, main, other
    finally:
        await runner.cleanup()
        await other_runner.cleanup()


async def test_token_travels_as_a_header_and_is_stored_nowhere(https_git_server, tmp_path: Path) -> None:
    port, main, _ = https_git_server
    auth = HttpsTokenAuth(token=TOKEN, username="oauth2")
    repo = GitRepository(
        url=f"https://127.0.0.1:{port}/team/jobs.git", ref="main", directory=tmp_path / "wc", auth=auth
    )

    with pytest.raises(FetchError) as raised:
        await repo.poll()

    expected = "Basic " + base64.b64encode(f"oauth2:{TOKEN}".encode()).decode()
    assert main.requests
    assert all(header == expected for _, header in main.requests)
    assert TOKEN not in str(raised.value)
    assert TOKEN not in repr(repo)
    assert TOKEN not in repr(auth)
    for path in (tmp_path / "wc" / ".git").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


async def test_redirects_are_not_followed_with_the_token(https_git_server, tmp_path: Path) -> None:
    port, main, other = https_git_server
    repo = GitRepository(
        url=f"https://127.0.0.1:{port}/moved.git",
        ref="main",
        directory=tmp_path / "wc",
        auth=HttpsTokenAuth(token=TOKEN),
    )

    with pytest.raises(FetchError):
        await repo.remote_revision()

    assert main.requests  # the first server was asked ...
    assert other.requests == []  # ... and its redirect was not followed


@pytest.mark.parametrize("url", ["http://git.example.invalid/team/jobs.git", "HTTP://git.example.invalid/jobs.git"])
def test_token_over_plain_http_is_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="refused for plain http://") as raised:
        GitRepository(url=url, ref="main", directory=tmp_path / "wc", auth=HttpsTokenAuth(token=TOKEN))
    assert TOKEN not in str(raised.value)
    assert not (tmp_path / "wc").exists()


def test_credentials_in_the_url_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="embeds a password") as raised:
        GitRepository(url=f"https://user:{TOKEN}@git.example.invalid/jobs.git", ref="main", directory=tmp_path / "wc")
    assert TOKEN not in str(raised.value)


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `ssh` that logs its argv, its key file's mode and its known_hosts, then fails like a host-key mismatch."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "ssh.log"
    script = bin_dir / "ssh"
    script.write_text(
        "#!/bin/sh\n"
        f'log="{log}"\n'
        'printf "%s\\n" "$@" > "$log"\n'
        'key=""; prev=""\n'
        'for arg in "$@"; do [ "$prev" = "-i" ] && key="$arg"; prev="$arg"; done\n'
        'echo "keymode=$(stat -c %a "$key")" >> "$log"\n'
        'for arg in "$@"; do\n'
        '  case "$arg" in UserKnownHostsFile=*) cat "${arg#UserKnownHostsFile=}" >> "$log";; esac\n'
        "done\n"
        'echo "Host key verification failed." >&2\n'
        "exit 255\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def exists(path: Path) -> bool:
    return path.exists()


async def test_ssh_checks_host_keys_with_only_the_given_key(fake_ssh: Path, tmp_path: Path) -> None:
    auth = SshKeyAuth(private_key=FAKE_KEY, known_hosts=KNOWN_HOSTS)
    repo = GitRepository(url="ssh://git@127.0.0.1:2222/team/jobs.git", ref="main", directory=tmp_path / "wc", auth=auth)

    with pytest.raises(FetchError, match="Host key verification failed") as raised:
        await repo.poll()

    lines = log_lines(fake_ssh)
    for option in (
        "StrictHostKeyChecking=yes",
        "IdentitiesOnly=yes",
        "BatchMode=yes",
        "GlobalKnownHostsFile=/dev/null",
    ):
        assert option in lines
    assert lines[lines.index("-F") + 1] == "/dev/null"
    key_path = Path(lines[lines.index("-i") + 1])
    assert "keymode=600" in lines
    assert KNOWN_HOSTS.strip() in lines
    assert not exists(key_path)  # the key lived only as long as the command
    assert "KEYMATERIAL" not in str(raised.value)
    assert "KEYMATERIAL" not in repr(auth)


def test_ssh_key_needs_known_hosts_and_an_ssh_url(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="known_hosts"):
        SshKeyAuth(private_key=FAKE_KEY, known_hosts="# nothing\n")
    with pytest.raises(SourceConfigError, match="ssh://"):
        GitRepository(
            url="https://git.example.invalid/jobs.git",
            ref="main",
            directory=tmp_path / "wc",
            auth=SshKeyAuth(private_key=FAKE_KEY, known_hosts=KNOWN_HOSTS),
        )
