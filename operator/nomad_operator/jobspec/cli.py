"""`nomad-operator render` and `validate`: job files to Nomad's JSON, and checks of whole trees of job files.

`render` must print byte for byte what `nomad job run -output` prints, so that users can diff the two. `validate`
exists so that a bad file is caught before it is pushed: it lists every error of every file with file:line, ends
with one summary line, and exits 0 only when all files are valid (1 when any is not, 2 on usage errors).
`validate --against-server` sends each file to a real Nomad's `/v1/jobs/parse` and lists the fields where Nomad's
JSON and ours differ: the way we, and users, find gaps in our conversion. It speaks plain aiohttp, because the
jobspec layer must not import the `nomad` client package (see the import contracts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TextIO

import aiohttp

from nomad_operator.jobspec.canonical import canonicalize
from nomad_operator.jobspec.errors import JobspecError, JobspecErrors, SourcePos
from nomad_operator.jobspec.field_diff import field_differences
from nomad_operator.jobspec.go_json import go_json
from nomad_operator.jobspec.job_file import LoadedJob, load_job, parse_for_api, read_job_text

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_USAGE: Final = 2
JOB_FILE_SUFFIXES: Final = (".nomad", ".nomad.hcl", ".hcl")
_JOB_BLOCK: Final = re.compile(r'^\s*job\s+"', re.MULTILINE)
DEFAULT_NOMAD_ADDR: Final = "http://127.0.0.1:4646"
SERVER_TIMEOUT_SECONDS: Final = 30.0


class UsageError(ValueError):
    """A bad command line: exit code 2."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    render = subparsers.add_parser("render", help="print a job file as Nomad's JSON job, like `nomad job run -output`")
    render.add_argument("file", type=Path, help="the job file")
    _add_variable_options(render)
    render.add_argument("--canonicalize", action="store_true", help="fill in Nomad's defaults, as /v1/jobs/parse does")
    render.set_defaults(handler=run_render)

    validate = subparsers.add_parser("validate", help="check job files and trees of job files; list every error")
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="job files or folders to search")
    _add_variable_options(validate)
    validate.add_argument(
        "--against-server",
        action="store_true",
        help="compare with the real Nomad's /v1/jobs/parse (NOMAD_ADDR, NOMAD_TOKEN) and print the differences",
    )
    validate.set_defaults(handler=run_validate)


def _add_variable_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-var", "--var", action="append", default=[], metavar="KEY=VALUE", help="set a variable")
    parser.add_argument("-var-file", "--var-file", action="append", default=[], type=Path, metavar="FILE",
                        help="read variables from an HCL file (later files win)")  # fmt: skip


def parse_variables(pairs: Sequence[str]) -> dict[str, str]:
    """`-var k=v` flags as a dict; raises UsageError on a flag without `=`."""
    variables: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"invalid -var {pair!r}: expected KEY=VALUE")
        variables[name.strip()] = value
    return variables


def run_render(args: argparse.Namespace, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        variables = parse_variables(args.var)
        loaded = load_job(args.file, variables=variables, var_files=args.var_file, environ=os.environ)
    except UsageError as error:
        print(f"nomad-operator render: {error}", file=err)
        return EXIT_USAGE
    except JobspecError as error:
        _print_errors(error, err)
        return EXIT_INVALID
    job = canonicalize(loaded.job) if args.canonicalize else loaded.job
    print(go_json({"Job": job}), file=out)
    return EXIT_OK


def find_job_files(paths: Sequence[Path]) -> tuple[list[Path], list[JobspecError]]:
    """The job files named or found under `paths`, sorted per folder; a path that does not exist is an error."""
    found: list[Path] = []
    missing: list[JobspecError] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(_job_files_under(path))
        else:
            missing.append(JobspecError("no such file or directory", SourcePos(str(path))))
    return found, missing


def _job_files_under(folder: Path) -> list[Path]:
    files: list[Path] = []
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(current) / name
            if not name.endswith(JOB_FILE_SUFFIXES):
                continue
            if name.endswith(".nomad") or name.endswith(".nomad.hcl") or _has_job_block(path):
                files.append(path)
    return files


def _has_job_block(path: Path) -> bool:
    try:
        return bool(_JOB_BLOCK.search(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return True  # unreadable: let validation report why


def run_validate(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    try:
        variables = parse_variables(args.var)
    except UsageError as error:
        print(f"nomad-operator validate: {error}", file=sys.stderr)
        return EXIT_USAGE
    files, problems = find_job_files(args.paths)
    valid: list[tuple[Path, LoadedJob]] = []
    error_count = len(problems)
    for problem in problems:
        _print_errors(problem, out)
    for path in files:
        try:
            loaded = load_job(path, variables=variables, var_files=args.var_file, environ=os.environ)
        except JobspecError as error:
            error_count += _print_errors(error, out)
            continue
        valid.append((path, loaded))
    invalid = len(files) - len(valid) + len(problems)
    differing = 0
    if args.against_server and valid:
        differing = asyncio.run(_compare_with_server(valid, variables, args.var_file, out))
    summary = f"{len(files)} job files checked: {len(valid)} valid, {invalid} invalid, {error_count} errors"
    if args.against_server:
        summary += f"; {differing} differ from Nomad"
    print(summary, file=out)
    if not files and not problems:
        print("no job files found (*.nomad, *.nomad.hcl, or *.hcl with a job block)", file=out)
        return EXIT_INVALID
    return EXIT_OK if invalid == 0 and differing == 0 else EXIT_INVALID


def variables_text(variables: dict[str, str], var_files: Sequence[Path]) -> str:
    """Var files and -var flags as one HCL var-file text, the form /v1/jobs/parse takes (flags last, so they win)."""
    parts = [read_job_text(path)[1] for path in var_files]
    parts += [f"{name} = {json.dumps(value)}" for name, value in variables.items()]
    return "\n".join(parts)


async def _compare_with_server(
    valid: list[tuple[Path, LoadedJob]], variables: dict[str, str], var_files: Sequence[Path], out: TextIO
) -> int:
    address = os.environ.get("NOMAD_ADDR", DEFAULT_NOMAD_ADDR).rstrip("/")
    headers = {"X-Nomad-Token": os.environ["NOMAD_TOKEN"]} if os.environ.get("NOMAD_TOKEN") else {}
    body_variables = variables_text(variables, var_files)
    differing = 0
    timeout = aiohttp.ClientTimeout(total=SERVER_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        for path, loaded in valid:
            request = {"JobHCL": loaded.source_text, "Canonicalize": False, "Variables": body_variables}
            try:
                async with session.post(f"{address}/v1/jobs/parse", json=request) as response:
                    text = await response.text()
                    if response.status != 200:
                        print(f"{path}: Nomad answered {response.status}: {text.strip()}", file=out)
                        differing += 1
                        continue
                    theirs = json.loads(text)
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as error:
                print(f"{path}: cannot check against Nomad at {address}: {error or type(error).__name__}", file=out)
                differing += 1
                continue
            try:
                ours = parse_for_api(loaded.source_text, variables=body_variables or None, canonicalize=False)
            except JobspecError as error:
                print(f"{path}: Nomad parses it, we do not without the filesystem:", file=out)
                _print_errors(error, out)
                differing += 1
                continue
            differences = field_differences(ours, theirs)
            for difference in differences:
                print(f"{path}: {difference}", file=out)
            differing += bool(differences)
    return differing


def _print_errors(error: JobspecError, out: TextIO) -> int:
    errors = error.errors if isinstance(error, JobspecErrors) else [error]
    for each in errors:
        print(str(each), file=out)
    return len(errors)
