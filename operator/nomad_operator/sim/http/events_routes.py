"""`GET /v1/event/stream`: NDJSON batches and `{}` heartbeats from the broker, until the client leaves or the stream
is cut.

The hazards: a heartbeat must go out at connect and then on every quiet interval (informers treat silence as death),
a cut or a dropped slow subscriber must end the response cleanly, and a vanished client must release its
subscription at once, or the broker would keep queueing for nobody.
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from nomad_operator.sim.errors import bad_request
from nomad_operator.sim.events import InvalidTopic, parse_topics
from nomad_operator.sim.http.app import cluster_of

HEARTBEAT = b"{}\n"


async def stream(request: web.Request) -> web.StreamResponse:
    cluster = cluster_of(request)
    text = request.query.get("index", "0")
    try:
        index = int(text or "0")
        if index < 0:
            raise ValueError
    except ValueError:
        raise bad_request(f'Unable to parse index: strconv.Atoi: parsing "{text}": invalid syntax') from None
    try:
        topics = parse_topics(request.query.getall("topic", []))
    except InvalidTopic as error:
        raise bad_request(str(error)) from None
    namespace = request.query.get("namespace") or "default"
    subscription = cluster.broker.subscribe(index=index, topics=topics, namespace=namespace)
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    try:
        await response.prepare(request)
        await response.write(HEARTBEAT)
        while True:
            line = await subscription.next_line(timeout=cluster.config.event_heartbeat)
            if line is None:
                if subscription.closed:
                    break
                await response.write(HEARTBEAT)
                continue
            await response.write(line)
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        cluster.broker.unsubscribe(subscription)
    with contextlib.suppress(ConnectionResetError, ConnectionError):
        await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/event/stream", stream)
