"""The `nomad-operator` command line: one entry point, one sub-command module per part of the product.

Each part owns its sub-commands in its own module (`sim`, `render`/`validate`, `run`/`plan`/`status`, ...), exposing
`register(subparsers)`. This module only assembles them, so the CLI never grows into a second home for logic.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from nomad_operator import __version__

# Modules that contribute sub-commands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "nomad_operator.jobspec.cli",
    "nomad_operator.sim.cli",
    "nomad_operator.controllers.gitops.cli",
    "nomad_operator.runtime.cli",
    "nomad_operator.demo",
)


class CommandModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nomad-operator",
        description="Run a self-healing Nomad cluster from git: GitOps and node controllers on an operator framework.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module: CommandModule = importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
