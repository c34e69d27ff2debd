import subprocess
import sys

import pytest

from nomad_operator.cli import main


def test_help_lists_the_program(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "nomad-operator" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: nomad-operator" in capsys.readouterr().err


def test_module_entry_point_runs_as_a_process() -> None:
    done = subprocess.run([sys.executable, "-m", "nomad_operator", "--version"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("nomad-operator ")
