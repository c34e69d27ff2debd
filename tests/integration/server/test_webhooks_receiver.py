"""The webhook receiver over real HTTP on 127.0.0.1: each answer it gives, to signed requests from aiohttp's client."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from nomad_operator.server.webhook_providers import Provider, signed_headers
from nomad_operator.server.webhooks import (
    FileSecret,
    PushEvent,
    StaticSecret,
    WebhookLimits,
    WebhookReceiver,
    WebhookResult,
    WebhookSource,
    WebhookStats,
)

SECRET = "hook-secret-8c1f"
SHA = "1234567890abcdef1234567890abcdef12345678"
SIGNED = [p for p in Provider if p is not Provider.AUTO]


def push_body(provider: Provider, ref: str = "refs/heads/main") -> bytes:
    if provider is Provider.BITBUCKET:
        kind, _, name = ref.removeprefix("refs/").partition("/")
        change = {"new": {"type": "branch" if kind == "heads" else "tag", "name": name, "target": {"hash": SHA}}}
        return json.dumps({"push": {"changes": [change]}}).encode()
    if provider is Provider.GITLAB:
        return json.dumps({"object_kind": "push", "ref": ref, "checkout_sha": SHA}).encode()
    return json.dumps(
        {"ref": ref, "after": SHA, "repository": {"clone_url": "https://git.example.invalid/x.git"}}
    ).encode()


@dataclass
class Sources:
    table: dict[str, WebhookSource] = field(default_factory=dict)

    def lookup(self, name: str) -> WebhookSource | None:
        return self.table.get(name)


@dataclass
class Harness:
    base: str
    session: aiohttp.ClientSession
    sources: Sources
    stats: WebhookStats
    pushes: list[PushEvent]

    async def post(self, source: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], dict]:
        async with self.session.post(f"{self.base}/hooks/{source}", data=body, headers=headers) as response:
            return response.status, dict(response.headers), await response.json()


async def serve(receiver: WebhookReceiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    receiver.install(app)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def make_harness_factory():
    async def make(*, limits: WebhookLimits | None = None, failing_push: bool = False) -> AsyncIterator[Harness]:
        sources = Sources()
        stats = WebhookStats()
        pushes: list[PushEvent] = []

        async def on_push(source: str, event: PushEvent) -> None:
            if failing_push:
                raise RuntimeError("trigger broke")
            pushes.append(event)

        receiver = WebhookReceiver(sources=sources, on_push=on_push, limits=limits, observer=stats)
        runner, base = await serve(receiver)
        session = aiohttp.ClientSession()
        try:
            yield Harness(base, session, sources, stats, pushes)
        finally:
            await session.close()
            await runner.cleanup()

    return make


@pytest.fixture
async def hooks() -> AsyncIterator[Harness]:
    async for harness in make_harness_factory()():
        harness.sources.table["apps"] = WebhookSource(name="apps", ref="main", secret=StaticSecret(SECRET))
        yield harness


@pytest.mark.parametrize("provider", SIGNED)
@pytest.mark.parametrize("configured", ["auto", "explicit"])
async def test_each_provider_valid_push_triggers(hooks: Harness, provider: Provider, configured: str) -> None:
    if configured == "explicit":
        hooks.sources.table["apps"] = WebhookSource(
            name="apps", ref="main", secret=StaticSecret(SECRET), provider=provider
        )
    body = push_body(provider)
    status, _, answer = await hooks.post("apps", body, signed_headers(provider, SECRET.encode(), body))

    assert (status, answer["result"]) == (202, "triggered")
    assert [(p.source, p.provider, p.ref) for p in hooks.pushes] == [("apps", provider, "refs/heads/main")]
    assert hooks.stats.total(WebhookResult.TRIGGERED) == 1


@pytest.mark.parametrize("provider", SIGNED)
async def test_bad_signature_is_401_and_triggers_nothing(hooks: Harness, provider: Provider) -> None:
    body = push_body(provider)
    status, _, answer = await hooks.post("apps", body, signed_headers(provider, b"wrong-secret", body))

    assert (status, answer["result"]) == (401, "bad_signature")
    assert hooks.pushes == []


async def test_signature_over_another_body_is_401(hooks: Harness) -> None:
    body = push_body(Provider.GITHUB)
    headers = signed_headers(Provider.GITHUB, SECRET.encode(), body)
    status, _, _ = await hooks.post("apps", body.replace(b"main", b"prod"), headers)
    assert status == 401
    assert hooks.pushes == []


async def test_missing_signature_is_401(hooks: Harness) -> None:
    status, _, answer = await hooks.post("apps", push_body(Provider.GITHUB), {"X-GitHub-Event": "push"})
    assert (status, answer["result"]) == (401, "missing_signature")
    assert "X-Hub-Signature-256" in answer["message"]
    status, _, answer = await hooks.post("apps", push_body(Provider.GITHUB), {"Content-Type": "application/json"})
    assert (status, answer["result"]) == (401, "missing_signature")


@pytest.mark.parametrize("secret", [StaticSecret(None), StaticSecret(""), FileSecret(Path("/nonexistent/secret"))])
async def test_no_secret_configured_refuses_everything(hooks: Harness, secret) -> None:
    hooks.sources.table["open"] = WebhookSource(name="open", ref="main", secret=secret)
    body = push_body(Provider.GITHUB)
    for headers in (signed_headers(Provider.GITHUB, b"", body), {"X-GitHub-Event": "push"}):
        status, _, answer = await hooks.post("open", body, headers)
        assert (status, answer["result"]) == (403, "no_secret")
    assert hooks.pushes == []


async def test_secret_file_is_read_per_request(hooks: Harness, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("first\n")
    hooks.sources.table["filed"] = WebhookSource(name="filed", ref="main", secret=FileSecret(secret_file))
    body = push_body(Provider.GENERIC)

    assert (await hooks.post("filed", body, signed_headers(Provider.GENERIC, b"first", body)))[0] == 202
    secret_file.write_text("rotated")
    assert (await hooks.post("filed", body, signed_headers(Provider.GENERIC, b"first", body)))[0] == 401
    assert (await hooks.post("filed", body, signed_headers(Provider.GENERIC, b"rotated", body)))[0] == 202


async def test_unreadable_secret_is_503(hooks: Harness) -> None:
    async def broken() -> bytes:
        raise OSError("vault down")

    hooks.sources.table["flaky"] = WebhookSource(name="flaky", ref="main", secret=broken)
    status, _, answer = await hooks.post("flaky", b"{}", {"X-GitHub-Event": "push"})
    assert (status, answer["result"]) == (503, "secret_unavailable")


async def test_unknown_source_is_404(hooks: Harness) -> None:
    body = push_body(Provider.GITHUB)
    status, _, answer = await hooks.post("nope", body, signed_headers(Provider.GITHUB, SECRET.encode(), body))
    assert (status, answer["result"]) == (404, "unknown_source")
    assert hooks.stats.counts[(None, WebhookResult.UNKNOWN_SOURCE)] == 1


async def test_wrong_event_is_ignored(hooks: Harness) -> None:
    body = b'{"action": "opened"}'
    status, _, answer = await hooks.post(
        "apps", body, signed_headers(Provider.GITHUB, SECRET.encode(), body, event="issues")
    )
    assert (status, answer["result"]) == (202, "ignored_event")
    assert hooks.pushes == []


@pytest.mark.parametrize("ref", ["refs/heads/dev", "refs/tags/v1-main", "refs/heads/main2"])
async def test_push_to_another_ref_is_ignored(hooks: Harness, ref: str) -> None:
    body = push_body(Provider.GITEA, ref)
    status, _, answer = await hooks.post("apps", body, signed_headers(Provider.GITEA, SECRET.encode(), body))
    assert (status, answer["result"]) == (202, "ignored_ref")
    assert answer["message"].startswith(f"ignored: ref {ref}")
    assert hooks.pushes == []


async def test_tag_following_source_triggers_on_its_tag(hooks: Harness) -> None:
    hooks.sources.table["rel"] = WebhookSource(name="rel", ref="refs/tags/v2", secret=StaticSecret(SECRET))
    body = push_body(Provider.GITLAB, "refs/tags/v2")
    headers = signed_headers(Provider.GITLAB, SECRET.encode(), body, event="Tag Push Hook")
    status, _, _ = await hooks.post("rel", body, headers)
    assert status == 202
    assert [p.ref for p in hooks.pushes] == ["refs/tags/v2"]


async def test_pinned_commit_source_ignores_pushes(hooks: Harness) -> None:
    hooks.sources.table["pin"] = WebhookSource(name="pin", ref=SHA, secret=StaticSecret(SECRET))
    body = push_body(Provider.GITHUB)
    status, _, answer = await hooks.post("pin", body, signed_headers(Provider.GITHUB, SECRET.encode(), body))
    assert (status, answer["result"]) == (202, "ignored_ref")
    assert "pinned to a commit" in answer["message"]


@pytest.mark.parametrize(("provider", "event"), [(Provider.GITHUB, "ping"), (Provider.BITBUCKET, "diagnostics:ping")])
async def test_ping_is_200(hooks: Harness, provider: Provider, event: str) -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    status, _, answer = await hooks.post("apps", body, signed_headers(provider, SECRET.encode(), body, event=event))
    assert (status, answer["result"]) == (200, "ping")
    assert hooks.pushes == []


async def test_unsigned_ping_is_still_401(hooks: Harness) -> None:
    status, _, _ = await hooks.post("apps", b"{}", {"X-GitHub-Event": "ping"})
    assert status == 401


async def test_bad_json_in_a_signed_push_is_400(hooks: Harness) -> None:
    body = b"{not json"
    status, _, answer = await hooks.post("apps", body, signed_headers(Provider.GITHUB, SECRET.encode(), body))
    assert (status, answer["result"]) == (400, "bad_request")


async def test_get_is_405(hooks: Harness) -> None:
    async with hooks.session.get(f"{hooks.base}/hooks/apps") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"


async def test_push_handler_failure_is_500(hooks: Harness) -> None:
    async for failing in make_harness_factory()(failing_push=True):
        failing.sources.table["apps"] = WebhookSource(name="apps", ref="main", secret=StaticSecret(SECRET))
        body = push_body(Provider.GITHUB)
        status, _, answer = await failing.post("apps", body, signed_headers(Provider.GITHUB, SECRET.encode(), body))
        assert (status, answer["result"]) == (500, "error")


async def test_oversized_body_is_413() -> None:
    async for small in make_harness_factory()(limits=WebhookLimits(max_body_bytes=1000)):
        small.sources.table["apps"] = WebhookSource(name="apps", ref="main", secret=StaticSecret(SECRET))
        body = json.dumps({"ref": "refs/heads/main", "pad": "x" * 2000}).encode()
        status, _, answer = await small.post("apps", body, signed_headers(Provider.GITHUB, SECRET.encode(), body))
        assert (status, answer["result"]) == (413, "too_large")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies while reading
            for _ in range(4):
                yield b"x" * 400

        headers = signed_headers(Provider.GITHUB, SECRET.encode(), b"x" * 1600)
        async with small.session.post(f"{small.base}/hooks/apps", data=chunks(), headers=headers) as response:
            assert response.status == 413
        fits = push_body(Provider.GITHUB)
        assert (await small.post("apps", fits, signed_headers(Provider.GITHUB, SECRET.encode(), fits)))[0] == 202
        assert len(small.pushes) == 1


async def test_rate_limit_is_429_with_retry_after() -> None:
    async for limited in make_harness_factory()(limits=WebhookLimits(rate_per_second=0.01, burst=3)):
        for name in ("apps", "other"):
            limited.sources.table[name] = WebhookSource(name=name, ref="main", secret=StaticSecret(SECRET))
        body = push_body(Provider.GITHUB)
        headers = signed_headers(Provider.GITHUB, SECRET.encode(), body)
        statuses = [(await limited.post("apps", body, headers))[0] for _ in range(5)]
        status, response_headers, answer = await limited.post("apps", body, headers)

        assert statuses == [202, 202, 202, 429, 429]
        assert (status, answer["result"]) == (429, "rate_limited")
        assert int(response_headers["Retry-After"]) >= 1
        assert (await limited.post("other", body, headers))[0] == 202  # buckets are per source


async def test_logs_never_carry_the_secret(hooks: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="nomad_operator.server.webhooks")
    body = push_body(Provider.GITLAB)
    await hooks.post("apps", body, signed_headers(Provider.GITLAB, SECRET.encode(), body))
    await hooks.post("apps", body, {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET + "x"})

    assert len(caplog.records) >= 2
    assert all(SECRET not in record.getMessage() for record in caplog.records)


async def test_delivery_id_is_passed_on(hooks: Harness) -> None:
    body = push_body(Provider.GITHUB)
    headers = {**signed_headers(Provider.GITHUB, SECRET.encode(), body), "X-GitHub-Delivery": "d-42"}
    await hooks.post("apps", body, headers)
    assert [p.delivery for p in hooks.pushes] == ["d-42"]
    assert hooks.pushes[0].after == SHA
