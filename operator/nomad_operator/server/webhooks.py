"""`POST /hooks/{source}`: signed webhooks from git hosts, turned into one thing only, "fetch this source now".

A webhook endpoint faces the internet, so it trusts nothing it receives: a source with no secret configured refuses
every request (the common tools accept unsigned pushes in that case), the signature is checked in constant time over
the raw body before any JSON is parsed, the body is capped while it is read (not after), and each source has a token
bucket so a flood costs a 429 and no fetch. Even a genuine webhook carries no desired state: its payload could be
replayed or stale, so it only names a source and a ref, and the fetch loop asks git what is true. Requests are logged
with their decision but never with a secret or signature, and counted by result for metrics.

The server layer may not import controllers, so sources are found through the `WebhookSources` Protocol and a push is
handed to a `PushHandler` callback (in the GitOps controller: the source's FetchTrigger).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson
from aiohttp import web

from nomad_operator.server.webhook_providers import (
    EventKind,
    PayloadError,
    Provider,
    detect_provider,
    has_signature,
    is_pinned_commit,
    parse_event,
    ref_is_followed,
    signature_header,
    verify,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # push payloads are a few KiB; GitHub's own cap is 25 MB
DEFAULT_RATE_PER_SECOND = 10.0
DEFAULT_RATE_BURST = 100
MAX_SECRET_FILE_BYTES = 64 * 1024
MAX_TRACKED_SOURCES = 4096  # token buckets kept; sources are known names, so this only bounds a misbehaving lookup
HOOKS_PREFIX = "/hooks"
READ_CHUNK_BYTES = 64 * 1024

DELIVERY_HEADERS = (
    "X-GitHub-Delivery",
    "X-Forgejo-Delivery",
    "X-Gitea-Delivery",
    "X-Gitlab-Event-UUID",
    "X-Request-UUID",
    "X-Delivery",
)


class SecretGetter(Protocol):
    """Reads a source's webhook secret when a request arrives (from a file, a Nomad Variable, ...)."""

    def __call__(self) -> Awaitable[bytes | str | None]: ...


@dataclass(frozen=True)
class WebhookSource:
    """What the receiver needs to know about one source."""

    name: str
    ref: str  # as the source writes it: "main", "refs/tags/v1", or a commit SHA
    secret: SecretGetter = field(repr=False)
    provider: Provider = Provider.AUTO


class WebhookSources(Protocol):
    """Finds a source by the name in the URL."""

    def lookup(self, name: str) -> WebhookSource | None: ...


@dataclass(frozen=True)
class PushEvent:
    """A verified push to a ref the source follows: a request to fetch, nothing more."""

    source: str
    provider: Provider
    ref: str
    after: str | None
    deleted: bool = False
    delivery: str | None = None


class PushHandler(Protocol):
    """Called once per verified push to a followed ref; should only request a fetch (and may be async)."""

    def __call__(self, source: str, event: PushEvent) -> Awaitable[None] | None: ...


class WebhookResult(enum.StrEnum):
    TRIGGERED = "triggered"
    PING = "ping"
    IGNORED_REF = "ignored_ref"
    IGNORED_EVENT = "ignored_event"
    MISSING_SIGNATURE = "missing_signature"
    BAD_SIGNATURE = "bad_signature"
    NO_SECRET = "no_secret"
    SECRET_UNAVAILABLE = "secret_unavailable"
    UNKNOWN_SOURCE = "unknown_source"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    BAD_REQUEST = "bad_request"
    ERROR = "error"


class WebhookObserver(Protocol):
    """Told every decision; the metrics layer counts them (source is None when the name was unknown)."""

    def observe(self, source: str | None, result: WebhookResult) -> None: ...


@dataclass
class WebhookStats:
    """Counts of decisions by (source, result); a WebhookObserver for tests and for metrics until prometheus."""

    counts: Counter[tuple[str | None, WebhookResult]] = field(default_factory=Counter)

    def observe(self, source: str | None, result: WebhookResult) -> None:
        self.counts[(source, result)] += 1

    def total(self, result: WebhookResult) -> int:
        return sum(n for (_, r), n in self.counts.items() if r is result)


@dataclass(frozen=True)
class WebhookLimits:
    """The body cap and the per-source token bucket (`rate_per_second` refill, `burst` capacity)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    rate_per_second: float = DEFAULT_RATE_PER_SECOND
    burst: int = DEFAULT_RATE_BURST

    def __post_init__(self) -> None:
        if self.max_body_bytes <= 0 or self.rate_per_second <= 0 or self.burst < 1:
            raise ValueError(f"webhook limits must be positive: {self}")


class RateLimiter:
    """A token bucket per key; `acquire` answers 0 when allowed, else the seconds until a token is back."""

    def __init__(self, *, rate_per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def acquire(self, key: str) -> float:
        now = self._clock()
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > MAX_TRACKED_SOURCES:
            self._buckets.popitem(last=False)
        return wait


@dataclass(frozen=True)
class FileSecret:
    """A secret read from a file at each request, so a rotated secret is used at once; a missing file means none."""

    path: Path

    async def __call__(self) -> bytes | None:
        return await asyncio.to_thread(self._read)

    def _read(self) -> bytes | None:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(MAX_SECRET_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        if len(data) > MAX_SECRET_FILE_BYTES:
            raise ValueError(f"webhook secret file {self.path} is larger than {MAX_SECRET_FILE_BYTES} bytes")
        return data.strip() or None  # editors add a final newline that the git host never signs with


@dataclass(frozen=True)
class StaticSecret:
    """A secret known up front (tests, the CLI's environment variable)."""

    value: bytes | str | None = field(repr=False)

    async def __call__(self) -> bytes | str | None:
        return self.value


def _delivery_id(headers: Mapping[str, str]) -> str | None:
    for name in DELIVERY_HEADERS:
        value = headers.get(name)
        if value:
            return value[:128]
    return None


class WebhookReceiver:
    """The handler for `POST {prefix}/{source}`; `install()` adds its route to an aiohttp application."""

    def __init__(
        self,
        *,
        sources: WebhookSources,
        on_push: PushHandler,
        limits: WebhookLimits | None = None,
        observer: WebhookObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = sources
        self.on_push = on_push
        self.limits = limits if limits is not None else WebhookLimits()
        self.observer: WebhookObserver = observer if observer is not None else WebhookStats()
        self._limiter = RateLimiter(rate_per_second=self.limits.rate_per_second, burst=self.limits.burst, clock=clock)

    def install(self, app: web.Application, *, prefix: str = HOOKS_PREFIX) -> None:
        # Every method reaches the handler, so a GET gets our 405 (and is counted), not aiohttp's bare one.
        app.router.add_route("*", prefix.rstrip("/") + "/{source}", self.handle)

    def _answer(
        self,
        source: str | None,
        result: WebhookResult,
        status: int,
        message: str,
        *,
        name: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        self.observer.observe(source, result)
        level = logging.INFO if status < 400 else logging.WARNING
        log.log(level, "webhook %r: %s %s: %s", name, status, result.value, message)
        body = orjson.dumps({"result": result.value, "message": message})
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)

    async def _read_body(self, request: web.Request) -> bytes | None:
        limit = self.limits.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info.get("source", "")
        if request.method != "POST":
            return self._answer(
                None, WebhookResult.METHOD_NOT_ALLOWED, 405, f"method {request.method} not allowed; use POST",
                name=name, headers={"Allow": "POST"},
            )  # fmt: skip
        source = self.sources.lookup(name)
        if source is None:
            return self._answer(None, WebhookResult.UNKNOWN_SOURCE, 404, f"unknown source {name!r}", name=name)
        try:
            secret = await source.secret()
        except Exception as exc:  # the secret store failed; say so without its content
            log.warning("webhook %r: cannot read the webhook secret: %s", name, type(exc).__name__)
            return self._answer(
                name, WebhookResult.SECRET_UNAVAILABLE, 503, "webhook secret cannot be read now", name=name
            )
        secret_bytes = secret.encode() if isinstance(secret, str) else secret
        if not secret_bytes:
            return self._answer(
                name, WebhookResult.NO_SECRET, 403,
                f"source {name!r} has no webhook secret configured: every request is refused", name=name,
            )  # fmt: skip
        retry_after = self._limiter.acquire(name)
        if retry_after > 0:
            seconds = max(1, math.ceil(retry_after))
            return self._answer(
                name, WebhookResult.RATE_LIMITED, 429, f"too many webhooks for source {name!r}; retry in {seconds} s",
                name=name, headers={"Retry-After": str(seconds)},
            )  # fmt: skip
        body = await self._read_body(request)
        if body is None:
            return self._answer(
                name, WebhookResult.TOO_LARGE, 413, f"body larger than {self.limits.max_body_bytes} bytes", name=name
            )
        return await self._verified(request, source, secret_bytes, body)

    async def _verified(self, request: web.Request, source: WebhookSource, secret: bytes, body: bytes) -> web.Response:
        name = source.name
        provider = source.provider if source.provider is not Provider.AUTO else detect_provider(request.headers)
        if provider is None or not has_signature(provider, request.headers):
            expected = "a known signature header" if provider is None else signature_header(provider)
            return self._answer(name, WebhookResult.MISSING_SIGNATURE, 401, f"missing {expected}", name=name)
        if not verify(provider, request.headers, body, secret):
            return self._answer(
                name, WebhookResult.BAD_SIGNATURE, 401, f"bad {signature_header(provider)} for {provider}", name=name
            )
        try:
            event = parse_event(provider, request.headers, body)
        except PayloadError as exc:
            return self._answer(name, WebhookResult.BAD_REQUEST, 400, f"{provider} webhook: {exc}", name=name)
        if event.kind is EventKind.PING:
            return self._answer(name, WebhookResult.PING, 200, f"pong: {provider} webhook verified", name=name)
        if event.kind is EventKind.OTHER:
            return self._answer(
                name, WebhookResult.IGNORED_EVENT, 202, f"ignored: {provider} event {event.name!r} is not a push",
                name=name,
            )  # fmt: skip
        followed = [u for u in event.updates if ref_is_followed(source.ref, u.ref)]
        if not followed:
            pushed = ", ".join(u.ref for u in event.updates) or "no ref"
            why = "the source is pinned to a commit" if is_pinned_commit(source.ref) else f"it follows {source.ref}"
            return self._answer(name, WebhookResult.IGNORED_REF, 202, f"ignored: ref {pushed} ({why})", name=name)
        update = followed[0]
        push = PushEvent(
            source=name, provider=provider, ref=update.ref, after=update.after, deleted=update.deleted,
            delivery=_delivery_id(request.headers),
        )  # fmt: skip
        try:
            pending = self.on_push(name, push)
            if inspect.isawaitable(pending):
                await pending
        except Exception:
            log.exception("webhook %r: the push handler failed", name)
            return self._answer(name, WebhookResult.ERROR, 500, "internal error while requesting a fetch", name=name)
        at = f" at {update.after[:12]}" if update.after else ""
        return self._answer(
            name, WebhookResult.TRIGGERED, 202, f"fetch requested: {provider} push to {update.ref}{at}", name=name
        )
