"""Git credentials: URL checks, what each auth puts in a command's environment, and that repr hides secrets."""

from __future__ import annotations

import base64
import os
import shlex

import pytest

from nomad_operator.controllers.gitops.git_errors import SourceConfigError
from nomad_operator.controllers.gitops.gitauth import (
    HttpsTokenAuth,
    NoAuth,
    SshKeyAuth,
    check_url,
    redact_url,
    url_scheme,
)

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETKEYBODY\n-----END OPENSSH PRIVATE KEY-----"
HOSTS = "git.example.invalid ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n"


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("https://h/x.git", "https"),
        ("http://h/x.git", "http"),
        ("ssh://git@h:22/x.git", "ssh"),
        ("git@h:team/x.git", "ssh"),
        ("git://h/x.git", "git"),
        ("file:///srv/x.git", "file"),
        ("/srv/x.git", "file"),
    ],
)
def test_url_scheme(url: str, scheme: str) -> None:
    assert url_scheme(url) == scheme


def test_redact_and_check_url() -> None:
    assert redact_url("https://u:pw@h:8443/x.git") == "https://u:***@h:8443/x.git"
    assert redact_url("https://h/x.git") == "https://h/x.git"
    with pytest.raises(SourceConfigError, match="embeds a password") as raised:
        check_url("https://u:pw-123@h/x.git")
    assert "pw-123" not in str(raised.value)
    for bad in ("", " https://h/x", "https://h/x\n"):
        with pytest.raises(SourceConfigError):
            check_url(bad)


def test_token_environment_is_a_per_command_extra_header() -> None:
    auth = HttpsTokenAuth(token="t0k", username="oauth2")
    with auth.environment() as env:
        pairs = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}
    assert pairs["http.extraHeader"] == "Authorization: Basic " + base64.b64encode(b"oauth2:t0k").decode()
    assert pairs["http.followRedirects"] == "false"
    assert "t0k" not in repr(auth)


@pytest.mark.parametrize("url", ["http://h/x.git", "git://h/x.git", "git@h:x.git", "file:///x.git"])
def test_token_needs_https(url: str) -> None:
    with pytest.raises(SourceConfigError, match="https://") as raised:
        HttpsTokenAuth(token="t0k").check(url)
    assert "t0k" not in str(raised.value)
    HttpsTokenAuth(token="t0k").check("https://h/x.git")


@pytest.mark.parametrize(("token", "username"), [("", "u"), ("a\nb", "u"), ("t", "a:b"), ("t", "a\r")])
def test_bad_tokens_are_refused(token: str, username: str) -> None:
    with pytest.raises(SourceConfigError):
        HttpsTokenAuth(token=token, username=username)


def test_ssh_environment_writes_a_private_key_only_for_the_command() -> None:
    auth = SshKeyAuth(private_key=KEY, known_hosts=HOSTS)
    with auth.environment() as env:
        words = shlex.split(env["GIT_SSH_COMMAND"])
        key_path = words[words.index("-i") + 1]
        assert oct(os.stat(key_path).st_mode & 0o777) == "0o600"
        assert oct(os.stat(os.path.dirname(key_path)).st_mode & 0o777) == "0o700"
        with open(key_path) as key_file:
            assert key_file.read() == KEY + "\n"
        options = {words[i + 1] for i, w in enumerate(words) if w == "-o"}
        assert {"StrictHostKeyChecking=yes", "IdentitiesOnly=yes", "BatchMode=yes"} <= options
        hosts_option = next(o for o in options if o.startswith("UserKnownHostsFile="))
        with open(hosts_option.split("=", 1)[1]) as hosts_file:
            assert hosts_file.read() == HOSTS
    assert not os.path.exists(key_path)
    assert "SECRETKEYBODY" not in repr(auth)


def test_ssh_key_checks() -> None:
    with pytest.raises(SourceConfigError, match="not a PEM"):
        SshKeyAuth(private_key="hunter2", known_hosts=HOSTS)
    with pytest.raises(SourceConfigError, match="known_hosts"):
        SshKeyAuth(private_key=KEY, known_hosts="")
    with pytest.raises(SourceConfigError, match="ssh://"):
        SshKeyAuth(private_key=KEY, known_hosts=HOSTS).check("https://h/x.git")
    SshKeyAuth(private_key=KEY, known_hosts=HOSTS).check("git@h:x.git")


def test_no_auth_adds_nothing() -> None:
    with NoAuth().environment() as env:
        assert env == {}
    NoAuth().check("http://h/x.git")
