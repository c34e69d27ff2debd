"""Settings from the nomad CLI's environment, their validation, TLS contexts, and the secrecy of the token."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from nomad_operator.nomad.defaults import DEFAULT_ADDRESS
from nomad_operator.nomad.errors import ConfigurationError
from nomad_operator.nomad.settings import NomadSettings, build_ssl_context

SECRET = "9f2b4c1e-secret"


def test_defaults_match_the_nomad_cli() -> None:
    settings = NomadSettings.from_env({})

    assert settings == NomadSettings(address=DEFAULT_ADDRESS)
    assert settings.token is None
    assert settings.namespace is None
    assert settings.skip_verify is False
    assert settings.base_url == "http://127.0.0.1:4646"


def test_every_variable_is_read() -> None:
    settings = NomadSettings.from_env(
        {
            "NOMAD_ADDR": "https://nomad.example:4646/",
            "NOMAD_TOKEN": SECRET,
            "NOMAD_TOKEN_FILE": "/run/secrets/nomad-token",
            "NOMAD_NAMESPACE": "apps",
            "NOMAD_REGION": "eu",
            "NOMAD_CACERT": "/etc/nomad/ca.pem",
            "NOMAD_CLIENT_CERT": "/etc/nomad/cli.pem",
            "NOMAD_CLIENT_KEY": "/etc/nomad/cli-key.pem",
            "NOMAD_SKIP_VERIFY": "1",
            "NOMAD_TLS_SERVER_NAME": "server.global.nomad",
        }
    )

    assert settings.address == "https://nomad.example:4646"
    assert settings.token == SECRET
    assert settings.token_file == Path("/run/secrets/nomad-token")
    assert (settings.namespace, settings.region) == ("apps", "eu")
    assert settings.ca_cert == Path("/etc/nomad/ca.pem")
    assert (settings.client_cert, settings.client_key) == (Path("/etc/nomad/cli.pem"), Path("/etc/nomad/cli-key.pem"))
    assert settings.skip_verify is True
    assert settings.tls_server_name == "server.global.nomad"


def test_empty_variables_mean_unset() -> None:
    settings = NomadSettings.from_env({"NOMAD_ADDR": "", "NOMAD_TOKEN": "  ", "NOMAD_NAMESPACE": ""})

    assert (settings.address, settings.token, settings.namespace) == (DEFAULT_ADDRESS, None, None)


def test_the_token_is_not_in_repr_or_str() -> None:
    settings = NomadSettings.from_env({"NOMAD_TOKEN": SECRET})

    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"NOMAD_ADDR": "127.0.0.1:4646"}, "NOMAD_ADDR must start with"),
        ({"NOMAD_ADDR": "ftp://nomad"}, "NOMAD_ADDR must start with"),
        ({"NOMAD_ADDR": "unix://"}, "needs a socket path"),
        ({"NOMAD_SKIP_VERIFY": "yes"}, "NOMAD_SKIP_VERIFY must be a boolean"),
        ({"NOMAD_CLIENT_CERT": "/etc/cert.pem"}, "must be set together"),
        ({"NOMAD_CLIENT_KEY": "/etc/key.pem"}, "must be set together"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        NomadSettings.from_env(environ)


def test_unix_socket_address() -> None:
    settings = NomadSettings.from_env({"NOMAD_ADDR": "unix:///run/nomad/nomad.sock"})

    assert settings.unix_socket == "/run/nomad/nomad.sock"
    assert settings.base_url == "http://localhost"


def test_plain_http_needs_no_tls_context() -> None:
    assert build_ssl_context(NomadSettings()) is None


def test_https_verifies_by_default() -> None:
    context = build_ssl_context(NomadSettings(address="https://nomad:4646"))

    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_skip_verify_turns_verification_off() -> None:
    context = build_ssl_context(NomadSettings(address="https://nomad:4646", skip_verify=True))

    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False


def test_unreadable_tls_files_are_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")

    with pytest.raises(ConfigurationError, match="TLS files"):
        build_ssl_context(NomadSettings(address="https://nomad:4646", ca_cert=bad))
    with pytest.raises(ConfigurationError, match="TLS files"):
        build_ssl_context(NomadSettings(client_cert=tmp_path / "absent.pem", client_key=tmp_path / "absent-key.pem"))
