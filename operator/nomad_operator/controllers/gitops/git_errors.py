"""The errors a git source can raise, as one tree, so callers can tell "try again later" from "fix the repository".

A fetch can fail for three different reasons that call for different reactions: the source is configured wrongly (a
token over plain http, a short commit SHA: retrying never helps), the remote cannot be reached or lacks the ref (retry
with backoff, keep the last good copy), or the fetched content breaks a policy (a limit, a symlink out of the tree:
report it on the source until the next push fixes it). Every message here is written to be shown to a user, so none of
them may carry a secret: they name URLs only after credentials were stripped, and never carry tokens or keys.
"""

from __future__ import annotations


class GitSourceError(Exception):
    """Base of every error raised by the git side of a GitOps source."""


class SourceConfigError(GitSourceError):
    """The source's URL, ref or authentication cannot work as given; retrying will not help."""


class FetchError(GitSourceError):
    """The remote could not be asked or fetched from; the last good working copy stays usable."""


class RefNotFound(FetchError):
    """The remote has no branch or tag of the source's ref."""


class CommitNotFound(FetchError):
    """The source pins a commit SHA that the remote does not have."""


class ContentRejected(GitSourceError):
    """The fetched revision breaks a content policy; the working copy stays at the last good revision."""


class LimitExceeded(ContentRejected):
    """A repository, file-count or file-size limit was hit; the message names the limit and the values."""

    def __init__(self, *, limit: str, maximum: int, actual: int, path: str | None = None) -> None:
        self.limit = limit
        self.maximum = maximum
        self.actual = actual
        self.path = path
        where = f" ({path})" if path else ""
        super().__init__(f"{limit} exceeded{where}: {actual} > {maximum}")


class UnsafeSymlink(ContentRejected):
    """A symbolic link in the tree leads outside the repository or into its .git folder."""

    def __init__(self, *, path: str, target: str, reason: str) -> None:
        self.path = path
        self.target = target
        super().__init__(f"symlink {path!r} -> {target!r} refused: {reason}")


class FileNotInRevision(GitSourceError):
    """A path asked for is not a file of the current revision, or is not a safe relative path."""
