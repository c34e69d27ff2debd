"""The README's configuration reference against the real command line: every sub-command, every long option and
every NOMAD_OPERATOR_* variable of the CLI source settings must be in README.md, so the reference cannot fall behind
the code unnoticed. (The unplug/plug/commit commands it shows are run by tests/e2e/test_demo.py.)"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from nomad_operator.cli import build_parser
from nomad_operator.controllers.gitops import cli_source


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    options = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options += _long_options(sub)
        options += [o for o in action.option_strings if o.startswith("--") and o != "--help"]
    return options


@pytest.fixture(scope="module")
def readme(project_root: Path) -> str:
    return (project_root / "README.md").read_text()


def test_every_subcommand_is_documented(readme: str) -> None:
    commands = _subcommands()
    assert {"run", "plan", "sync", "status", "validate", "render", "sim", "apply", "get", "delete", "demo"} <= set(
        commands
    )
    for name in commands:
        assert f"`{name}" in readme or f"nomad-operator {name}" in readme, name


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_long_option_is_documented(readme: str, command: str) -> None:
    missing = [option for option in _long_options(_subcommands()[command]) if f"`{option}" not in readme]
    assert missing == [], f"{command}: {missing}"


def test_every_source_environment_variable_is_documented(readme: str) -> None:
    names = [value for key, value in vars(cli_source).items() if key.startswith("ENV_") and isinstance(value, str)]
    assert len(names) >= 10
    assert [name for name in names if name not in readme] == []
