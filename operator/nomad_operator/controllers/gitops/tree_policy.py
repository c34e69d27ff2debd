"""What a fetched tree may contain, decided from `git ls-tree` output before anything is checked out.

A repository is input from outside: it can be huge, hold a million files, or carry a symlink such as
`jobs/x.nomad -> ../../../etc/nomad.d/token` that would make the jobspec reader leak a host file into a job. These
checks run on the listing of the fetched commit, so a rejected revision never reaches the working copy and the last
good one stays in place. Symlinks are resolved the way the filesystem would (a link through another link, `..` after a
link to a deeper folder), not lexically, because lexical normalisation can be fooled by chains of in-tree links.

It also says which files changed between two revisions, by blob SHA, so only those are parsed again; a link counts as
changed when the file it leads to changed. All of it is pure: no git, no disk.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nomad_operator.controllers.gitops.git_errors import LimitExceeded, UnsafeSymlink

MiB = 1024 * 1024
DEFAULT_MAX_REPOSITORY_BYTES = 256 * MiB
DEFAULT_MAX_FILES = 20_000
DEFAULT_MAX_FILE_BYTES = 8 * MiB
MAX_SYMLINK_HOPS = 40  # what Linux allows before ELOOP

MODE_SYMLINK = 0o120000


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on what a fetch may bring in; each breach raises LimitExceeded naming the limit."""

    max_repository_bytes: int = DEFAULT_MAX_REPOSITORY_BYTES
    max_files: int = DEFAULT_MAX_FILES
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def __post_init__(self) -> None:
        for name in ("max_repository_bytes", "max_files", "max_file_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FetchLimits.{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class FileInfo:
    """One file of a revision: its blob, its size in bytes, its git mode, and for a symlink its in-tree target."""

    blob_sha: str
    size: int
    mode: int = 0o100644
    link_target: str | None = None  # the resolved path inside the repository, for symlinks only

    @property
    def is_symlink(self) -> bool:
        return self.mode == MODE_SYMLINK


@dataclass(frozen=True)
class TreeEntry:
    """One line of `git ls-tree -r -l -z`."""

    path: str
    mode: int
    kind: str  # "blob" or "commit"
    sha: str
    size: int  # 0 for gitlinks


def parse_ls_tree(output: bytes) -> list[TreeEntry]:
    """Parse NUL-separated `git ls-tree -r -l -z` output: `<mode> <type> <sha> <size>\\t<path>`."""
    entries: list[TreeEntry] = []
    for record in output.split(b"\0"):
        if not record:
            continue
        meta, sep, raw_path = record.partition(b"\t")
        fields = meta.split()
        if not sep or len(fields) != 4:
            raise ValueError(f"unexpected git ls-tree record: {record[:200]!r}")
        mode, kind, sha, size = fields
        entries.append(
            TreeEntry(
                path=raw_path.decode("utf-8", errors="surrogateescape"),
                mode=int(mode, 8),
                kind=kind.decode(),
                sha=sha.decode(),
                size=0 if size == b"-" else int(size),
            )
        )
    return entries


def check_limits(entries: Iterable[TreeEntry], limits: FetchLimits, *, git_dir_bytes: int = 0) -> None:
    """Raise LimitExceeded for the first limit the tree breaks; files are counted and summed, gitlinks are not."""
    count = 0
    total = git_dir_bytes
    for entry in entries:
        if entry.kind != "blob":
            continue
        count += 1
        if entry.size > limits.max_file_bytes:
            raise LimitExceeded(
                limit="max_file_bytes", maximum=limits.max_file_bytes, actual=entry.size, path=entry.path
            )
        total += entry.size
    if count > limits.max_files:
        raise LimitExceeded(limit="max_files", maximum=limits.max_files, actual=count)
    if total > limits.max_repository_bytes:
        raise LimitExceeded(limit="max_repository_bytes", maximum=limits.max_repository_bytes, actual=total)


class _Escape(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _resolve(path: str, links: Mapping[str, str], hops: list[int]) -> list[str]:
    """Resolve `path` (relative to the root) through the tree's links; return its physical segments."""
    resolved: list[str] = []
    pending = [seg for seg in path.split("/") if seg not in ("", ".")]
    pending.reverse()
    while pending:
        segment = pending.pop()
        if segment == "..":
            if not resolved:
                raise _Escape("it leads outside the repository")
            resolved.pop()
            continue
        candidate = "/".join([*resolved, segment])
        target = links.get(candidate)
        if target is None:
            resolved.append(segment)
            if resolved[0] == ".git":
                raise _Escape("it leads into the .git folder")
            continue
        hops[0] += 1
        if hops[0] > MAX_SYMLINK_HOPS:
            raise _Escape(f"more than {MAX_SYMLINK_HOPS} links in a row (a loop?)")
        if target.startswith("/"):
            raise _Escape("its target is an absolute path")
        # The link's target is read relative to the folder holding the link, then the rest of the path follows.
        rest = [seg for seg in target.split("/") if seg not in ("", ".")]
        pending.extend(reversed(rest))
    return resolved


def resolve_symlinks(links: Mapping[str, str]) -> dict[str, str]:
    """Map each link path to the in-tree path it resolves to; raise UnsafeSymlink for one that escapes.

    `links` maps a link's path to its raw target text, as stored in its blob.
    """
    resolved: dict[str, str] = {}
    for path, target in sorted(links.items()):
        if "\0" in target:
            raise UnsafeSymlink(path=path, target=target, reason="its target contains a NUL byte")
        if target.startswith("/"):
            raise UnsafeSymlink(path=path, target=target, reason="its target is an absolute path")
        try:
            segments = _resolve(posixpath.join(posixpath.dirname(path), target), links, [0])
        except _Escape as escape:
            raise UnsafeSymlink(path=path, target=target, reason=escape.reason) from None
        resolved[path] = "/".join(segments)
    return resolved


def build_files(entries: Iterable[TreeEntry], link_targets: Mapping[str, str]) -> dict[str, FileInfo]:
    """The files of a revision: every blob, with resolved targets for symlinks (gitlinks are left out)."""
    return {
        entry.path: FileInfo(
            blob_sha=entry.sha,
            size=entry.size,
            mode=entry.mode,
            link_target=link_targets.get(entry.path) if entry.mode == MODE_SYMLINK else None,
        )
        for entry in entries
        if entry.kind == "blob"
    }


def _content_key(path: str, files: Mapping[str, FileInfo]) -> tuple[int, str, str | None]:
    info = files[path]
    if info.link_target is None:
        return (info.mode, info.blob_sha, None)
    target = files.get(info.link_target)
    # A link is as new as what it leads to; a dangling link is keyed by its own blob alone.
    return (info.mode, info.blob_sha, target.blob_sha if target is not None else None)


def changed_paths(previous: Mapping[str, FileInfo] | None, current: Mapping[str, FileInfo]) -> frozenset[str]:
    """Paths added, removed or changed in content between two revisions; every path when there is no previous one."""
    if previous is None:
        return frozenset(current)
    changed = {p for p in previous if p not in current}
    for path in current:
        if path not in previous or _content_key(path, previous) != _content_key(path, current):
            changed.add(path)
    return frozenset(changed)
