"""The demo repository's `post-commit` hook: a signed generic webhook to each operator replica, without curl.

A git host sends a signed webhook on every push; the demo's repository is a local folder with no host, so its
`post-commit` hook plays that part: `python -m nomad_operator.demo_webhook --secret-file F --url U [--url U ...]`.
It reads the branch and commit from git, signs the JSON body with HMAC-SHA256 (`X-Signature: sha256=<hex>`, the
operator's generic provider) and posts it. Hazards: a hook that blocks or breaks the user's commit (a commit is never
undone by a post-commit hook; this one only reports, with a timeout), a missing secret file (a clear message, not a
traceback), and a detached HEAD (no branch was pushed, so nothing is sent). Only the standard library is used, so a
commit does not pay for importing the operator.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from nomad_operator.demo_defaults import WEBHOOK_TIMEOUT_SECONDS

SIGNATURE_HEADER = "X-Signature"
MAX_SECRET_BYTES = 64 * 1024
EXIT_SENT = 0
EXIT_FAILED = 1


class HookError(Exception):
    """Why the hook cannot send; printed as one line."""


def push_payload(*, ref: str, after: str) -> bytes:
    """The generic provider's push body: the ref that moved and the commit it points at."""
    return json.dumps({"event": "push", "ref": ref, "after": after}, sort_keys=True).encode()


def signed_headers(secret: bytes, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {SIGNATURE_HEADER: f"sha256={digest}", "Content-Type": "application/json"}


def read_secret(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise HookError(f"cannot read the webhook secret {path}: {error.strerror or error}") from None
    secret = data.strip()
    if not secret or len(data) > MAX_SECRET_BYTES:
        raise HookError(f"the webhook secret file {path} is empty or larger than {MAX_SECRET_BYTES} bytes")
    return secret


def _git(repo: Path, *args: str) -> str | None:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False,
                            timeout=WEBHOOK_TIMEOUT_SECONDS)  # fmt: skip
    return result.stdout.strip() if result.returncode == 0 else None


def head_of(repo: Path) -> tuple[str, str] | None:
    """(full ref name, commit) of the checked-out branch; None on a detached HEAD."""
    ref = _git(repo, "symbolic-ref", "-q", "HEAD")
    sha = _git(repo, "rev-parse", "HEAD")
    if not ref or not sha:
        return None
    return ref, sha


def send(url: str, body: bytes, headers: dict[str, str]) -> str:
    """Posts once; returns the operator's answer as one line (raises HookError when it refuses or is unreachable)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            return f"{response.status} {_message(response.read())}"
    except urllib.error.HTTPError as error:
        raise HookError(f"{error.code} {_message(error.read())}") from None
    except (urllib.error.URLError, OSError) as error:
        raise HookError(f"unreachable: {getattr(error, 'reason', error)}") from None


def _message(raw: bytes) -> str:
    try:
        answer = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:200]
    return str(answer.get("message", answer)) if isinstance(answer, dict) else str(answer)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nomad_operator.demo_webhook",
                                     description="Send a signed push webhook for the repository's current branch.")
    parser.add_argument("--url", action="append", required=True, help="webhook URL, repeatable (one per replica)")
    parser.add_argument("--secret-file", type=Path, required=True, help="file holding the HMAC secret")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the repository (default: the current folder)")
    args = parser.parse_args(argv)
    try:
        secret = read_secret(args.secret_file)
    except HookError as error:
        print(f"nomad-operator demo hook: {error}", file=sys.stderr)
        return EXIT_FAILED
    head = head_of(args.repo)
    if head is None:
        print("nomad-operator demo hook: HEAD is not on a branch; no webhook sent", file=sys.stderr)
        return EXIT_SENT
    ref, sha = head
    body = push_payload(ref=ref, after=sha)
    headers = signed_headers(secret, body)
    accepted = 0
    for url in args.url:
        try:
            answer = send(url, body, headers)
        except HookError as error:
            print(f"nomad-operator demo hook: webhook to {url} failed: {error}", file=sys.stderr)
            continue
        accepted += 1
        print(f"nomad-operator demo hook: webhook to {url}: {answer}", file=sys.stderr)
    return EXIT_SENT if accepted else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
