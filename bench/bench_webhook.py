"""Benchmark the webhook path: signed requests per second through the receiver, and fetches per burst of webhooks.

Two figures, each against a baseline measured in the same run:
1. throughput: signed GitHub push webhooks per second through `WebhookReceiver` (lookup, secret, rate limit, capped
   read, HMAC check, JSON parse, ref match, trigger) over loopback, against the same requests to a bare aiohttp
   handler that reads the body and answers 202. The ratio is the receiver's cost.
2. coalescing: 1,000 webhooks for one push spread over one second, into a FetchTrigger and a fetch loop polling a
   real git repository (file://): git fetches, ls-remotes and loop wake-ups, against the 1,000 fetches of a
   fetch-per-webhook receiver.

    .venv/bin/python bench/bench_webhook.py [--requests N] [--concurrency C]

It prints figures only; no target is asserted here or in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
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
    WebhookSource,
    WebhookStats,
)

SECRET = b"bench-secret"
DEFAULT_REQUESTS = 3000
DEFAULT_CONCURRENCY = 32
ROUNDS = 3
BURST_WEBHOOKS = 1000
BURST_SECONDS = 1.0
SETTLE_SECONDS = 30.0
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


class OneSource:
    def __init__(self, source: WebhookSource) -> None:
        self.source = source

    def lookup(self, name: str) -> WebhookSource | None:
        return self.source if name == self.source.name else None


async def serve(install: Callable[[web.Application], None]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    install(app)
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hooks/apps"


async def blast(url: str, body: bytes, headers: dict[str, str], *, requests: int, concurrency: int) -> float:
    """Send `requests` POSTs with `concurrency` in flight; return requests per second."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        raise SystemExit(f"unexpected status {response.status}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


def push_body(after: str = "0" * 39 + "1") -> bytes:
    return json.dumps({"ref": "refs/heads/main", "after": after, "repository": {"clone_url": "x"}}).encode()


async def throughput(*, requests: int, concurrency: int) -> None:
    body = push_body()
    headers = signed_headers(Provider.GITHUB, SECRET, body)

    async def bare(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"result": "triggered"}, status=202)

    pushes = 0

    def on_push(source: str, event: PushEvent) -> None:
        nonlocal pushes
        pushes += 1

    receiver = WebhookReceiver(
        sources=OneSource(WebhookSource(name="apps", ref="main", secret=StaticSecret(SECRET))),
        on_push=on_push,
        limits=WebhookLimits(rate_per_second=1e9, burst=10**9),
    )
    installers: dict[str, Callable[[web.Application], None]] = {
        "bare aiohttp handler": lambda app: app.router.add_post("/hooks/{source}", bare),
        "WebhookReceiver": receiver.install,
    }
    servers = {name: await serve(install) for name, install in installers.items()}
    best: dict[str, float] = dict.fromkeys(installers, 0.0)
    try:
        for _name, (_, url) in servers.items():  # warm-up: connections, first-request paths
            await blast(url, body, headers, requests=min(300, requests), concurrency=concurrency)
        for _ in range(ROUNDS):  # interleaved, so load from elsewhere on the machine hits both alike
            for name, (_, url) in servers.items():
                rate = await blast(url, body, headers, requests=requests, concurrency=concurrency)
                best[name] = max(best[name], rate)
    finally:
        for runner, _ in servers.values():
            await runner.cleanup()
    base, ours = best["bare aiohttp handler"], best["WebhookReceiver"]
    print(f"throughput over loopback, best of {ROUNDS} interleaved rounds", end="")
    print(f" of {requests} requests with {concurrency} in flight (client and server share one event loop):")
    print(f"  bare aiohttp handler   {base:8.0f} req/s")
    print(f"  WebhookReceiver        {ours:8.0f} req/s   ({ours / base:.2f}x of bare; pushes seen {pushes})")


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=True)
    return done.stdout.strip()


async def coalescing(folder: Path) -> None:
    bare, work = folder / "origin.git", folder / "work"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=folder)
    git("init", "-q", "-b", "main", str(work), cwd=folder)
    (work / "jobs").mkdir()
    for n in range(50):
        (work / "jobs" / f"job{n}.nomad").write_text(f'job "job{n}" {{}}\n')
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "initial", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)

    repo = GitRepository(url=bare.as_uri(), ref="main", directory=folder / "wc")
    await repo.poll()
    fetches0, checks0 = repo.stats.network_fetches, repo.stats.remote_checks
    trigger = FetchTrigger(name="apps")
    idle = asyncio.Event()

    async def fetch_loop() -> None:
        while True:
            idle.set()
            await trigger.wait()
            idle.clear()
            await repo.poll()

    stats = WebhookStats()
    receiver = WebhookReceiver(
        sources=OneSource(WebhookSource(name="apps", ref="main", secret=StaticSecret(SECRET))),
        on_push=lambda source, event: trigger.request(reason="webhook"),
        limits=WebhookLimits(rate_per_second=1e9, burst=10**9),
        observer=stats,
    )
    runner, url = await serve(receiver.install)
    loop_task = asyncio.create_task(fetch_loop())
    (work / "jobs" / "job0.nomad").write_text('job "job0" { changed = true }\n')
    git("commit", "-q", "-am", "the push", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)
    pushed = git("rev-parse", "HEAD", cwd=work)
    body = push_body(pushed)
    headers = signed_headers(Provider.GITHUB, SECRET, body)
    try:
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()

            async def send_at(offset: float) -> int:
                await asyncio.sleep(max(0.0, started + offset - time.perf_counter()))
                async with session.post(url, data=body, headers=headers) as response:
                    return response.status

            sends: list[Awaitable[int]] = [send_at(i * BURST_SECONDS / BURST_WEBHOOKS) for i in range(BURST_WEBHOOKS)]
            statuses = await asyncio.gather(*sends)
            sent_in = time.perf_counter() - started
        deadline = time.monotonic() + SETTLE_SECONDS
        while trigger.pending or not idle.is_set():
            if time.monotonic() > deadline:
                raise SystemExit("the fetch loop did not settle")
            await asyncio.sleep(0.01)
        settled_in = time.perf_counter() - started
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        await runner.cleanup()

    current = repo.current
    fetches = repo.stats.network_fetches - fetches0
    print(f"coalescing: {BURST_WEBHOOKS} webhooks for one push, sent over {sent_in:.2f} s", end="")
    print(f" (fetch loop settled at {settled_in:.2f} s):")
    print(f"  answers 202: {statuses.count(202)}   fetch loop wake-ups: {trigger.stats.wakeups}")
    print(f"  git fetches: {fetches}   git ls-remotes: {repo.stats.remote_checks - checks0}")
    print(f"  fetch-per-webhook baseline: {BURST_WEBHOOKS} fetches -> {BURST_WEBHOOKS / max(fetches, 1):.0f}x fewer")
    print(f"  ended at the pushed commit: {current is not None and current.sha == pushed}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    args = parser.parse_args()
    await throughput(requests=args.requests, concurrency=args.concurrency)
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as folder:
        await coalescing(Path(folder))


if __name__ == "__main__":
    asyncio.run(main())
