"""How the client reaches Nomad: TLS from the settings, unix sockets, and a token file that rotates."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from nomad_fake_server import FakeNomad

from nomad_operator.nomad import NO_RETRY, ConfigurationError, NomadClient, NomadSettings, NomadUnreachable


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "server.pem", folder / "server-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=nomad.test", "-addext", "subjectAltName=IP:127.0.0.1,DNS:server.global.nomad",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def _serve(site_factory: type[web.TCPSite] | type[web.UnixSite], **site_options: object) -> AsyncIterator[str]:
    async def leader(request: web.Request) -> web.Response:
        return web.json_response("10.0.0.1:4647")

    app = web.Application()
    app.router.add_get("/v1/status/leader", leader)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = site_factory(runner, **site_options)  # type: ignore[arg-type]
    await site.start()
    try:
        address = runner.addresses[0]
        yield address if isinstance(address, str) else f"127.0.0.1:{address[1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def tls_address(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    async for address in _serve(web.TCPSite, host="127.0.0.1", port=0, ssl_context=context):
        yield f"https://{address}"


async def test_tls_with_the_ca_from_the_settings(tls_address: str, certificate: tuple[Path, Path]) -> None:
    settings = NomadSettings.from_env({"NOMAD_ADDR": tls_address, "NOMAD_CACERT": str(certificate[0])})
    async with NomadClient(settings) as nomad:
        assert await nomad.status_leader() == "10.0.0.1:4647"


async def test_tls_server_name_overrides_the_host_checked(tls_address: str, certificate: tuple[Path, Path]) -> None:
    env = {"NOMAD_ADDR": tls_address, "NOMAD_CACERT": str(certificate[0])}
    good = NomadSettings.from_env({**env, "NOMAD_TLS_SERVER_NAME": "server.global.nomad"})
    wrong = NomadSettings.from_env({**env, "NOMAD_TLS_SERVER_NAME": "other.nomad"})
    async with NomadClient(good) as nomad:
        assert await nomad.status_leader() == "10.0.0.1:4647"
    async with NomadClient(wrong, retry=NO_RETRY) as nomad:
        with pytest.raises(NomadUnreachable):
            await nomad.status_leader()


async def test_tls_verification_is_on_unless_skipped(tls_address: str) -> None:
    async with NomadClient(NomadSettings(address=tls_address), retry=NO_RETRY) as nomad:
        with pytest.raises(NomadUnreachable, match=r"(?i)certificate"):
            await nomad.status_leader()
    skipping = NomadSettings.from_env({"NOMAD_ADDR": tls_address, "NOMAD_SKIP_VERIFY": "true"})
    async with NomadClient(skipping) as nomad:
        assert await nomad.status_leader() == "10.0.0.1:4647"


def test_a_missing_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    settings = NomadSettings(address="https://127.0.0.1:4646", ca_cert=tmp_path / "absent.pem")
    with pytest.raises(ConfigurationError, match="TLS files"):
        NomadClient(settings)


async def test_unix_socket_address(tmp_path: Path) -> None:
    socket_path = tmp_path / "nomad.sock"
    async for _ in _serve(web.UnixSite, path=str(socket_path)):
        async with NomadClient(NomadSettings.from_env({"NOMAD_ADDR": f"unix://{socket_path}"})) as nomad:
            assert await nomad.status_leader() == "10.0.0.1:4647"


async def test_token_file_is_reread_when_it_changes(fake_nomad: FakeNomad, tmp_path: Path) -> None:
    fake_nomad.reply("GET", "/v1/jobs", (200, []))
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    settings = NomadSettings.from_env(
        {"NOMAD_ADDR": fake_nomad.url, "NOMAD_TOKEN": "env-token", "NOMAD_TOKEN_FILE": str(token_file)}
    )

    async with NomadClient(settings) as nomad:
        await nomad.list_jobs()
        await nomad.list_jobs()
        replacement = tmp_path / "token.new"
        replacement.write_text("second-token")
        os.replace(replacement, token_file)  # how rotation tools write: a new file renamed over the old
        await nomad.list_jobs()
        token_file.unlink()  # a rotation caught between delete and create: keep the last good token
        await nomad.list_jobs()

    sent = [request.headers["X-Nomad-Token"] for request in fake_nomad.requests]
    assert sent == ["first-token", "first-token", "second-token", "second-token"]


async def test_a_token_file_that_never_held_a_token_is_a_configuration_error(
    fake_nomad: FakeNomad, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("")
    settings = NomadSettings(address=fake_nomad.url, token_file=token_file)

    async with NomadClient(settings) as nomad:
        with pytest.raises(ConfigurationError, match="is empty"):
            await nomad.list_jobs()

    assert fake_nomad.requests == []
