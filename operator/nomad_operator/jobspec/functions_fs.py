"""Nomad's HCL2 file-system functions (file, filebase64, fileexists, fileset, abspath, basename, dirname,
pathexpand), confined to the repository.

Why: a job file in git may say `file("../../etc/shadow")` or follow a symlink out of the checkout. Nomad's CLI reads
whatever the path names; the operator reads files on the operator's host, so every path is resolved (symlinks too)
and must stay inside `root_dir`. With `allow_fs=False` every one of them fails as in Nomad's `/v1/jobs/parse`.
Reads are bounded (rule 7 of DESIGN.md): a job cannot pull a gigabyte into the event loop.
"""

from __future__ import annotations

import base64
import os
import posixpath
import re
from pathlib import Path

from nomad_operator.jobspec.function_support import LibraryFunction, arg_string, function
from nomad_operator.jobspec.hcl_types import Value
from nomad_operator.jobspec.scope import FunctionError

# The largest file `file()` reads, and the most paths `fileset()` returns.
FILE_SIZE_LIMIT = 4 * 1024 * 1024
FILESET_LIMIT = 10_000

FS_FUNCTION_NAMES = ("abspath", "basename", "dirname", "file", "filebase64", "fileexists", "fileset", "pathexpand")


class FileAccess:
    """Where relative paths start (`base_dir`) and the folder nothing may be read outside of (`root_dir`)."""

    def __init__(self, *, base_dir: Path, root_dir: Path | None) -> None:
        self.base_dir = base_dir
        self.root_dir = root_dir.resolve() if root_dir is not None else None

    def resolve(self, path_text: str, argument: int = 0) -> Path:
        if "\x00" in path_text:
            raise FunctionError("the path contains a NUL byte", argument=argument)
        path = Path(os.path.expanduser(path_text))
        if not path.is_absolute():
            path = self.base_dir / path
        resolved = path.resolve()
        if self.root_dir is not None and not resolved.is_relative_to(self.root_dir):
            raise FunctionError(
                f"{path_text!r} is outside the repository; files are read only inside it", argument=argument
            )
        return resolved

    def read(self, path_text: str) -> bytes:
        path = self.resolve(path_text)
        try:
            size = path.stat().st_size
            if size > FILE_SIZE_LIMIT:
                raise FunctionError(f"{path_text!r} is {size} bytes, over the {FILE_SIZE_LIMIT}-byte limit", argument=0)
            return path.read_bytes()
        except FileNotFoundError:
            raise FunctionError(f"no file exists at {path_text!r}", argument=0) from None
        except IsADirectoryError:
            raise FunctionError(f"{path_text!r} is a directory, not a file", argument=0) from None
        except OSError as exc:
            raise FunctionError(f"cannot read {path_text!r}: {exc.strerror}", argument=0) from None


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """doublestar's pattern language: `*`, `**`, `?`, `[class]`, `{a,b}`."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end < 0:
                raise FunctionError("unterminated [ in the pattern", argument=1)
            body = pattern[index + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            index = end
        elif char == "{":
            end = pattern.find("}", index + 1)
            if end < 0:
                raise FunctionError("unterminated { in the pattern", argument=1)
            out.append("(?:" + "|".join(re.escape(option) for option in pattern[index + 1 : end].split(",")) + ")")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out))


def fs_functions(access: FileAccess | None) -> tuple[LibraryFunction, ...]:
    """The file functions bound to one folder; with `access=None` (allow_fs off) each one fails as Nomad's do."""
    if access is None:
        return tuple(_disabled(name) for name in FS_FUNCTION_NAMES)

    @function("file", 1)
    def file(args: list[Value]) -> Value:
        raw = access.read(arg_string(args, 0))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FunctionError("the file is not valid UTF-8; use filebase64 for binary files", argument=0) from None

    @function("filebase64", 1)
    def filebase64(args: list[Value]) -> Value:
        return base64.b64encode(access.read(arg_string(args, 0))).decode("ascii")

    @function("fileexists", 1)
    def fileexists(args: list[Value]) -> Value:
        path = access.resolve(arg_string(args, 0))
        if path.is_dir():
            raise FunctionError(f"{args[0]!r} is a directory, not a file", argument=0)
        return path.is_file()

    @function("fileset", 2)
    def fileset(args: list[Value]) -> Value:
        folder = access.resolve(arg_string(args, 0))
        matcher = _glob_regex(arg_string(args, 1))
        found: list[str] = []
        for current, directories, names in os.walk(folder):
            directories.sort()
            for name in names:
                relative = Path(current, name).relative_to(folder).as_posix()
                if matcher.fullmatch(relative) and Path(current, name).is_file():
                    found.append(relative)
                    if len(found) > FILESET_LIMIT:
                        raise FunctionError(f"the pattern matches more than {FILESET_LIMIT} files", argument=1)
        return sorted(found)

    @function("abspath", 1)
    def abspath(args: list[Value]) -> Value:
        path = Path(arg_string(args, 0))
        return (path if path.is_absolute() else access.base_dir / path).absolute().as_posix()

    @function("basename", 1)
    def basename(args: list[Value]) -> Value:
        text = arg_string(args, 0).rstrip("/")
        if not text:
            return "/" if args[0] else "."
        return posixpath.basename(text)

    @function("dirname", 1)
    def dirname(args: list[Value]) -> Value:
        text = arg_string(args, 0)
        parent = text[: text.rfind("/") + 1]  # Go's filepath.Dir: everything up to the last separator, cleaned
        return posixpath.normpath(parent) if parent else "."

    @function("pathexpand", 1)
    def pathexpand(args: list[Value]) -> Value:
        return os.path.expanduser(arg_string(args, 0))

    return (file, filebase64, fileexists, fileset, abspath, basename, dirname, pathexpand)


def _disabled(name: str) -> LibraryFunction:
    def refuse(args: list[Value]) -> Value:
        raise FunctionError("filesystem functions are disabled here (as in Nomad's /v1/jobs/parse)")

    arity = {"fileset": 2}.get(name, 1)
    return LibraryFunction(name, refuse, arity, arity)
