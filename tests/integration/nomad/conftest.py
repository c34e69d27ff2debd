"""Fixtures of the Nomad client tests: a fake Nomad on 127.0.0.1 and a client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from multidict import MultiDict
from nomad_fake_server import FAST_RETRY, TOKEN, FakeNomad, Recorded

from nomad_operator.nomad import NomadClient, NomadSettings


@pytest.fixture
async def fake_nomad() -> AsyncIterator[FakeNomad]:
    fake = FakeNomad()

    async def dispatch(request: web.Request) -> web.StreamResponse:
        fake.requests.append(
            Recorded(
                request.method,
                request.path,
                request.raw_path,
                MultiDict(request.query),
                dict(request.headers),
                await request.read(),
            )
        )
        handler = fake.routes.get((request.method, request.path))
        if handler is None:
            return web.Response(status=404, text=f"no fake route for {request.method} {request.path}")
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(fake_nomad: FakeNomad) -> AsyncIterator[NomadClient]:
    settings = NomadSettings(address=fake_nomad.url, token=TOKEN, namespace="apps", region="eu")
    async with NomadClient(settings, retry=FAST_RETRY) as nomad:
        yield nomad
