"""Which remote ref a source follows: a branch, a tag, or a pinned commit, and how to read it off `git ls-remote`.

A bare name such as `main` or `v1.2` could be a branch or a tag; git itself would silently prefer the tag, so a
repository that gains a tag named like the followed branch would quietly switch what gets deployed. Here a name that is
both is an error that tells the user to write `refs/heads/...` or `refs/tags/...`. Annotated tags are followed to
their commit (`^{}`), a full commit SHA needs no round trip at all (a commit never moves), and a ref that could be
mistaken for an option (`-x`) or is not a valid git ref name is refused before it reaches a git command line. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nomad_operator.controllers.gitops.git_errors import RefNotFound, SourceConfigError

_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SHORT_HEX = re.compile(r"[0-9a-f]{4,39}")
_BAD_REF = re.compile(r"(?:\.\.|@\{|//|[\x00-\x20\x7f~^:?*\[\\])")

BRANCH_PREFIX = "refs/heads/"
TAG_PREFIX = "refs/tags/"


@dataclass(frozen=True)
class SourceRef:
    """A source's ref as written by the user, classified."""

    text: str

    def __post_init__(self) -> None:
        text = self.text
        if not text:
            raise SourceConfigError("the source's ref is empty")
        if _FULL_SHA.fullmatch(text):
            return
        if text.startswith(("-", "/")) or text.endswith(("/", ".", ".lock")) or _BAD_REF.search(text):
            raise SourceConfigError(f"ref {text!r} is not a valid git branch, tag or commit name")
        if text.startswith("refs/") and not text.startswith((BRANCH_PREFIX, TAG_PREFIX)):
            raise SourceConfigError(f"ref {text!r}: only refs/heads/... and refs/tags/... can be followed")

    @property
    def commit(self) -> str | None:
        """The pinned commit SHA, or None when the ref is a branch or tag name."""
        return self.text if _FULL_SHA.fullmatch(self.text) else None

    def candidates(self) -> tuple[str, ...]:
        """The full ref names to ask `git ls-remote` for (with peeled tag names, so annotated tags resolve)."""
        if self.commit is not None:
            return ()
        if self.text.startswith(BRANCH_PREFIX):
            return (self.text,)
        if self.text.startswith(TAG_PREFIX):
            return (self.text, self.text + "^{}")
        tag = TAG_PREFIX + self.text
        return (BRANCH_PREFIX + self.text, tag, tag + "^{}")


def parse_ls_remote(output: str) -> dict[str, str]:
    """`<sha>\\t<refname>` lines into {refname: sha}."""
    refs: dict[str, str] = {}
    for line in output.splitlines():
        sha, sep, name = line.strip().partition("\t")
        if sep and sha and name:
            refs[name] = sha
    return refs


def pick_remote_commit(ref: SourceRef, listing: dict[str, str], *, url: str) -> tuple[str, str]:
    """From an ls-remote listing, the (full ref name, commit SHA) the source follows; clear errors otherwise."""
    found: list[tuple[str, str]] = []
    for name in ref.candidates():
        if name.endswith("^{}") or name not in listing:
            continue
        # An annotated tag lists the tag object; its peeled line gives the commit.
        found.append((name, listing.get(name + "^{}", listing[name])))
    if len(found) > 1:
        raise SourceConfigError(
            f"ref {ref.text!r} is both a branch and a tag on {url}; write {BRANCH_PREFIX}{ref.text} "
            f"or {TAG_PREFIX}{ref.text}"
        )
    if not found:
        hint = ""
        if _SHORT_HEX.fullmatch(ref.text):
            hint = " (if it is a commit, give the full 40-character SHA)"
        raise RefNotFound(f"ref {ref.text!r} not found on {url}: no such branch or tag{hint}")
    return found[0]
