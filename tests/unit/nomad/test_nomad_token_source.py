"""The token source: fixed token, token file re-read on change, the last good token kept through a rotation."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from nomad_operator.nomad.errors import ConfigurationError
from nomad_operator.nomad.token_source import TokenSource


def test_fixed_token_without_a_file() -> None:
    assert TokenSource(token="abc", token_file=None).current() == "abc"
    assert TokenSource(token=None, token_file=None).current() is None


def test_the_file_wins_over_the_fixed_token_and_is_stripped(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  from-file \n")

    assert TokenSource(token="from-env", token_file=token_file).current() == "from-file"


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("one")
    source = TokenSource(token=None, token_file=token_file)
    assert source.current() == "one"

    token_file.write_text("two-longer")  # a different size, so the change is seen whatever the mtime resolution
    assert source.current() == "two-longer"
    stat = token_file.stat()
    token_file.write_text("six-ch")
    os.utime(token_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert source.current() == "six-ch"


@pytest.mark.parametrize("damage", ["delete", "empty", "two lines", "binary"])
def test_a_broken_rotation_keeps_the_last_good_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("good")
    source = TokenSource(token=None, token_file=token_file)
    assert source.current() == "good"

    if damage == "delete":
        token_file.unlink()
    elif damage == "empty":
        token_file.write_text("")
    elif damage == "two lines":
        token_file.write_text("first\nsecond")
    else:
        token_file.write_bytes(b"\xff\xfe\xfa")

    with caplog.at_level(logging.WARNING, logger="nomad_operator.nomad.token_source"):
        assert source.current() == "good"
        assert source.current() == "good"
    assert len(caplog.records) == 1  # warned once, not on every request
    assert "good" not in caplog.records[0].getMessage()

    token_file.write_text("fresh")
    assert source.current() == "fresh"


def test_a_file_that_never_held_a_token_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot stat the token file"):
        TokenSource(token="fallback", token_file=tmp_path / "absent").current()


def test_redact_replaces_known_tokens(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-secret")
    source = TokenSource(token="env-secret", token_file=token_file)
    source.current()

    assert source.redact("a env-secret b file-secret c") == "a <redacted> b <redacted> c"
