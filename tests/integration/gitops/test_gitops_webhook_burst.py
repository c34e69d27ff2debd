"""A thousand signed webhooks for one push, through the real receiver and trigger into a real git fetch loop.

The whole path a push takes: aiohttp client -> WebhookReceiver on 127.0.0.1 -> FetchTrigger -> fetch loop ->
GitRepository.poll() against a real repository. However the requests interleave with the fetches, the push must be
fetched once (twice at most, if the first fetch started before the push landed), and the loop must end current.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from nomad_operator.controllers.gitops.repository import GitRepository
from nomad_operator.controllers.gitops.trigger import FetchTrigger
from nomad_operator.server.webhook_providers import Provider, signed_headers
from nomad_operator.server.webhooks import (
    PushEvent,
    StaticSecret,
    WebhookLimits,
    WebhookReceiver,
    WebhookResult,
    WebhookSource,
    WebhookStats,
)

SECRET = b"burst-secret"
WEBHOOKS = 1000
CONCURRENCY = 64
SETTLE_SECONDS = 30.0


class OneSource:
    def __init__(self, source: WebhookSource) -> None:
        self.source = source

    def lookup(self, name: str) -> WebhookSource | None:
        return self.source if name == self.source.name else None


async def test_thousand_webhooks_coalesce_into_one_or_two_fetches(origin, tmp_path: Path) -> None:
    repo = GitRepository(url=origin.url, ref="main", directory=tmp_path / "wc")
    await repo.poll()
    fetches_before = repo.stats.network_fetches
    trigger = FetchTrigger(name="apps")
    idle = asyncio.Event()

    async def fetch_loop() -> None:
        while True:
            idle.set()
            await trigger.wait()
            idle.clear()
            await repo.poll()

    def on_push(source: str, event: PushEvent) -> None:
        trigger.request(reason="webhook")

    stats = WebhookStats()
    receiver = WebhookReceiver(
        sources=OneSource(WebhookSource(name="apps", ref="main", secret=StaticSecret(SECRET))),
        on_push=on_push,
        limits=WebhookLimits(rate_per_second=10_000, burst=WEBHOOKS * 2),
        observer=stats,
    )
    app = web.Application()
    receiver.install(app)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    loop_task = asyncio.create_task(fetch_loop())

    pushed = origin.commit_and_push({"jobs/web.nomad": 'job "web" { v = 2 }\n'}, "the push")
    body = json.dumps({"ref": "refs/heads/main", "after": pushed}).encode()
    headers = signed_headers(Provider.GITHUB, SECRET, body)
    gate = asyncio.Semaphore(CONCURRENCY)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

            async def send() -> int:
                async with gate, session.post(f"http://127.0.0.1:{port}/hooks/apps", data=body, headers=headers) as r:
                    return r.status

            started = time.monotonic()
            statuses = await asyncio.gather(*(send() for _ in range(WEBHOOKS)))
            elapsed = time.monotonic() - started

        deadline = time.monotonic() + SETTLE_SECONDS
        while trigger.pending or not idle.is_set():
            assert time.monotonic() < deadline, "the fetch loop did not settle"
            await asyncio.sleep(0.01)
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        await runner.cleanup()

    print(f"{WEBHOOKS} webhooks in {elapsed:.2f} s, {trigger.stats.wakeups} wake-ups")
    assert statuses == [202] * WEBHOOKS
    assert stats.total(WebhookResult.TRIGGERED) == WEBHOOKS
    assert repo.current is not None
    assert repo.current.sha == pushed
    assert repo.stats.network_fetches - fetches_before in (1, 2)
    assert trigger.stats.wakeups < trigger.stats.requests == WEBHOOKS
