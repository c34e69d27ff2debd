"""How each git host signs its webhooks and says what happened, reduced to "is it genuine" and "which refs moved".

Every provider does it differently: GitHub sends `X-Hub-Signature-256: sha256=<hex>` (HMAC-SHA256 of the raw body),
Gitea and Forgejo send the bare hex in `X-Gitea-Signature` / `X-Forgejo-Signature`, Bitbucket Cloud sends
`X-Hub-Signature: sha256=<hex>`, GitLab sends the shared secret itself in `X-Gitlab-Token`, and the generic receiver
takes `X-Signature: sha256=<hex>`. Auto-detection must look at the most specific headers first, because Gitea also
sends `X-GitHub-Event` and Forgejo also sends the Gitea headers. Comparison is constant-time (`hmac.compare_digest`)
over the exact bytes received, before any of the body is parsed. All of it is pure: headers and bytes in, answers out.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

ZERO_SHA = "0" * 40
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class Provider(enum.StrEnum):
    """A webhook sender; AUTO means "tell by the headers"."""

    AUTO = "auto"
    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"
    FORGEJO = "forgejo"
    BITBUCKET = "bitbucket"
    GENERIC = "generic"


class EventKind(enum.StrEnum):
    PUSH = "push"
    PING = "ping"
    OTHER = "other"


class PayloadError(ValueError):
    """A verified request whose body does not say what its event header promises."""


@dataclass(frozen=True)
class RefUpdate:
    """One ref moved by a push: its full name, the new commit (None when unknown) and whether it was deleted."""

    ref: str
    after: str | None
    deleted: bool = False


@dataclass(frozen=True)
class WebhookEvent:
    """What a verified webhook says: its kind, the provider's own event name, and the refs it moved."""

    kind: EventKind
    name: str
    updates: tuple[RefUpdate, ...] = ()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and not isinstance(headers, CIMultiDictProxy | CIMultiDict):
        # A plain dict is case-sensitive; aiohttp's headers already are not, and scanning them costs a third of a
        # request's handling.
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def detect_provider(headers: Mapping[str, str]) -> Provider | None:
    """The sender, by its most specific headers (Forgejo before Gitea before GitHub, which Gitea imitates)."""
    if _header(headers, "X-Forgejo-Event") is not None or _header(headers, "X-Forgejo-Signature") is not None:
        return Provider.FORGEJO
    if _header(headers, "X-Gitea-Event") is not None or _header(headers, "X-Gitea-Signature") is not None:
        return Provider.GITEA
    if _header(headers, "X-Gitlab-Event") is not None or _header(headers, "X-Gitlab-Token") is not None:
        return Provider.GITLAB
    if _header(headers, "X-Event-Key") is not None:
        return Provider.BITBUCKET
    if _header(headers, "X-GitHub-Event") is not None:
        return Provider.GITHUB
    if _header(headers, "X-Signature") is not None:
        return Provider.GENERIC
    return None


def hmac_sha256_hex(secret: bytes, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of `body`, as every HMAC provider sends it (and as tests sign)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _prefixed_hex_matches(value: str | None, expected_hex: str) -> bool:
    if value is None:
        return False
    scheme, sep, digest = value.strip().partition("=")
    if not sep or scheme.lower() != "sha256":
        return False
    return hmac.compare_digest(digest.lower().encode(), expected_hex.encode())


def _bare_hex_matches(value: str | None, expected_hex: str) -> bool:
    if value is None:
        return False
    return hmac.compare_digest(value.strip().lower().encode(), expected_hex.encode())


def signature_header(provider: Provider) -> str:
    """The header that carries the provider's proof, for messages."""
    return {
        Provider.GITHUB: "X-Hub-Signature-256",
        Provider.GITLAB: "X-Gitlab-Token",
        Provider.GITEA: "X-Gitea-Signature",
        Provider.FORGEJO: "X-Forgejo-Signature",
        Provider.BITBUCKET: "X-Hub-Signature",
        Provider.GENERIC: "X-Signature",
    }.get(provider, "a signature header")


def has_signature(provider: Provider, headers: Mapping[str, str]) -> bool:
    """Whether the request carries the provider's proof at all (to tell "missing" from "wrong")."""
    if provider is Provider.FORGEJO:
        return _header(headers, "X-Forgejo-Signature") is not None or _header(headers, "X-Gitea-Signature") is not None
    return _header(headers, signature_header(provider)) is not None


def verify(provider: Provider, headers: Mapping[str, str], body: bytes, secret: bytes) -> bool:
    """Whether the request was made by someone holding `secret`; constant-time, before the body is parsed."""
    if not secret:
        return False  # an empty secret would let anyone sign
    if provider is Provider.GITLAB:
        token = _header(headers, "X-Gitlab-Token")
        return token is not None and hmac.compare_digest(token.encode(), secret)
    expected = hmac_sha256_hex(secret, body)
    if provider is Provider.GITHUB:
        return _prefixed_hex_matches(_header(headers, "X-Hub-Signature-256"), expected)
    if provider is Provider.BITBUCKET:
        return _prefixed_hex_matches(_header(headers, "X-Hub-Signature"), expected)
    if provider is Provider.GENERIC:
        return _prefixed_hex_matches(_header(headers, "X-Signature"), expected)
    if provider is Provider.FORGEJO:
        # Forgejo sends both; when its own header is there, it is the one that counts.
        own = _header(headers, "X-Forgejo-Signature")
        return _bare_hex_matches(own if own is not None else _header(headers, "X-Gitea-Signature"), expected)
    if provider is Provider.GITEA:
        return _bare_hex_matches(_header(headers, "X-Gitea-Signature"), expected)
    return False


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("body is not a JSON object")
    return data


def _ref_update(data: Mapping[str, Any], *, sha_keys: tuple[str, ...]) -> RefUpdate:
    ref = data.get("ref")
    if not isinstance(ref, str) or not ref:
        raise PayloadError("push payload has no 'ref'")
    after = next((data[k] for k in sha_keys if isinstance(data.get(k), str) and data[k]), None)
    deleted = data.get("deleted") is True or after == ZERO_SHA
    return RefUpdate(ref=ref, after=None if after == ZERO_SHA else after, deleted=deleted)


_BITBUCKET_REF_PREFIXES = {"branch": "refs/heads/", "tag": "refs/tags/", "annotated_tag": "refs/tags/"}


def _bitbucket_updates(data: Mapping[str, Any]) -> tuple[RefUpdate, ...]:
    push = data.get("push")
    changes = push.get("changes") if isinstance(push, dict) else None
    if not isinstance(changes, list):
        raise PayloadError("repo:push payload has no push.changes")
    updates: list[RefUpdate] = []
    for change in changes:
        if not isinstance(change, dict):
            continue
        # `new` is null when a branch or tag was deleted; the name then comes from `old`.
        side = change.get("new") or change.get("old")
        if not isinstance(side, dict) or not isinstance(side.get("name"), str):
            continue
        prefix = _BITBUCKET_REF_PREFIXES.get(str(side.get("type")))
        if prefix is None:
            continue
        target = side.get("target")
        after = target.get("hash") if isinstance(target, dict) and change.get("new") else None
        updates.append(RefUpdate(ref=prefix + side["name"], after=after, deleted=not change.get("new")))
    return tuple(updates)


def parse_event(provider: Provider, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
    """What a verified request says; raise PayloadError when a push's body lacks what every push carries."""
    if provider is Provider.GITHUB:
        name = _header(headers, "X-GitHub-Event") or ""
        if name == "ping":
            return WebhookEvent(EventKind.PING, name)
        if name == "push":
            return WebhookEvent(EventKind.PUSH, name, (_ref_update(_json(body), sha_keys=("after",)),))
        return WebhookEvent(EventKind.OTHER, name)
    if provider is Provider.GITLAB:
        name = _header(headers, "X-Gitlab-Event") or ""
        if name in ("Push Hook", "Tag Push Hook"):
            data = _json(body)
            return WebhookEvent(EventKind.PUSH, name, (_ref_update(data, sha_keys=("checkout_sha", "after")),))
        if name == "System Hook":
            data = _json(body)
            if data.get("object_kind") in ("push", "tag_push"):
                return WebhookEvent(EventKind.PUSH, name, (_ref_update(data, sha_keys=("checkout_sha", "after")),))
        return WebhookEvent(EventKind.OTHER, name)
    if provider in (Provider.GITEA, Provider.FORGEJO):
        own = "X-Forgejo-Event" if provider is Provider.FORGEJO else "X-Gitea-Event"
        name = _header(headers, own) or _header(headers, "X-Gitea-Event") or ""
        if name == "push":
            return WebhookEvent(EventKind.PUSH, name, (_ref_update(_json(body), sha_keys=("after",)),))
        return WebhookEvent(EventKind.OTHER, name)
    if provider is Provider.BITBUCKET:
        name = _header(headers, "X-Event-Key") or ""
        if name == "diagnostics:ping":
            return WebhookEvent(EventKind.PING, name)
        if name == "repo:push":
            return WebhookEvent(EventKind.PUSH, name, _bitbucket_updates(_json(body)))
        return WebhookEvent(EventKind.OTHER, name)
    if provider is Provider.GENERIC:
        data = _json(body)
        if data.get("event") == "ping":
            return WebhookEvent(EventKind.PING, "ping")
        return WebhookEvent(EventKind.PUSH, "push", (_ref_update(data, sha_keys=("after", "sha")),))
    raise PayloadError(f"no event parser for provider {provider}")


def ref_is_followed(source_ref: str, pushed_ref: str) -> bool:
    """Whether a push to the full ref name `pushed_ref` moves what a source following `source_ref` deploys.

    `source_ref` is written as the user wrote it: a bare branch or tag name matches either `refs/heads/<name>` or
    `refs/tags/<name>`, a full `refs/...` name matches only itself, and a pinned commit SHA matches no push.
    """
    if _FULL_SHA.fullmatch(source_ref):
        return False
    if source_ref.startswith("refs/"):
        return pushed_ref == source_ref
    return pushed_ref in (f"refs/heads/{source_ref}", f"refs/tags/{source_ref}")


def is_pinned_commit(source_ref: str) -> bool:
    return _FULL_SHA.fullmatch(source_ref) is not None


PUSH_EVENT_NAMES: dict[Provider, str] = {
    Provider.GITHUB: "push",
    Provider.GITLAB: "Push Hook",
    Provider.GITEA: "push",
    Provider.FORGEJO: "push",
    Provider.BITBUCKET: "repo:push",
    Provider.GENERIC: "push",
}


def signed_headers(provider: Provider, secret: bytes, body: bytes, *, event: str | None = None) -> dict[str, str]:
    """The headers `provider` would send with `body` under `secret`: for tests, benchmarks and a webhook self-test."""
    name = event if event is not None else PUSH_EVENT_NAMES.get(provider, "push")
    digest = hmac_sha256_hex(secret, body)
    if provider is Provider.GITHUB:
        return {"X-GitHub-Event": name, "X-Hub-Signature-256": f"sha256={digest}"}
    if provider is Provider.GITLAB:
        return {"X-Gitlab-Event": name, "X-Gitlab-Token": secret.decode()}
    if provider is Provider.GITEA:
        return {"X-Gitea-Event": name, "X-GitHub-Event": name, "X-Gitea-Signature": digest}
    if provider is Provider.FORGEJO:
        return {
            "X-Forgejo-Event": name,
            "X-Gitea-Event": name,
            "X-Forgejo-Signature": digest,
            "X-Gitea-Signature": digest,
        }
    if provider is Provider.BITBUCKET:
        return {"X-Event-Key": name, "X-Hub-Signature": f"sha256={digest}"}
    if provider is Provider.GENERIC:
        return {"X-Signature": f"sha256={digest}"}
    raise ValueError(f"cannot sign for provider {provider}")
