"""EventStream against a fake Nomad event stream over real HTTP that cuts, stalls, garbles and replays.

The fake follows Nomad's index rules (nomad-api-facts §3): it starts at the first buffered batch with Index >= the
requested index, at its oldest batch when the requested one was dropped, and re-sends its newest batch when asked for
a future one. Each connection follows a plan, so a test says exactly how the server misbehaves.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web
from nomad_fake_server import TOKEN

from nomad_operator.nomad import (
    Backoff,
    BadRequest,
    EventBatch,
    EventStream,
    NomadClient,
    NomadSettings,
    PermissionDenied,
    StreamReset,
)

FAST_BACKOFF = Backoff(initial=0.001, maximum=0.01, jitter=0.001)
WRITE_PIECE = 64 * 1024


@dataclass
class Plan:
    """What the server does on one connection."""

    status: int | None = None  # answer this status (plain text) instead of streaming
    text: str = ""
    silent: bool = False  # send nothing at all, not even the `{}` heartbeat
    cut_after: int | None = None  # after this many batches, send half of the next line and drop the connection
    close_after: int | None = None  # after this many batches, end the response cleanly
    garbage_after: int | None = None  # after this many batches, send a line that is not JSON
    rewind: int = 0  # start this many batches before where Nomad would (a replay the client must drop)
    drop_older_than: int | None = None  # evict batches below this index from the buffer before serving


def event_line(index: int, *, events: int = 1, payload: str = "") -> bytes:
    batch = {
        "Index": index,
        "Events": [
            {
                "Topic": "Allocation",
                "Type": "PlanResult",
                "Key": f"alloc-{index}-{n}",
                "Namespace": "default",
                "FilterKeys": ["web", "deploy-1"],
                "Index": index,
                "Payload": {"Allocation": {"ID": f"alloc-{index}-{n}", "JobID": "web", "Blob": payload}},
            }
            for n in range(events)
        ],
    }
    return orjson.dumps(batch) + b"\n"


@dataclass
class FakeEventStream:
    batches: list[tuple[int, bytes]] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    requested: list[int] = field(default_factory=list)
    topics: list[list[str]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    url: str = ""
    published: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, indices: list[int], **line_options: object) -> None:
        self.batches.extend((index, event_line(index, **line_options)) for index in indices)  # type: ignore[arg-type]
        self.published.set()

    def start_position(self, requested: int) -> int:
        """Nomad's StartAtClosest: inclusive; the oldest when too old; the newest when in the future."""
        if not self.batches:
            return 0
        if requested > self.batches[-1][0]:
            return len(self.batches) - 1
        return next(position for position, (index, _) in enumerate(self.batches) if index >= requested)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        requested = int(request.query.get("index", "0"))
        self.requested.append(requested)
        self.topics.append(request.query.getall("topic", []))
        self.tokens.append(request.headers.get("X-Nomad-Token", ""))
        plan = self.plans.pop(0) if self.plans else Plan()
        if plan.status is not None:
            return web.Response(status=plan.status, text=plan.text)
        if plan.drop_older_than is not None:
            self.batches = [(index, line) for index, line in self.batches if index >= plan.drop_older_than]
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if plan.silent:
            await asyncio.Event().wait()  # until the client gives up and the server shuts the handler down
        await response.write(b"{}\n")
        position = max(0, self.start_position(requested) - plan.rewind)
        sent = 0
        while True:
            while position < len(self.batches) and sent not in (plan.cut_after, plan.close_after):
                if sent == plan.garbage_after:
                    await response.write(b"<html>502 Bad Gateway</html>\n")
                line = self.batches[position][1]
                for offset in range(0, len(line), WRITE_PIECE):
                    await response.write(line[offset : offset + WRITE_PIECE])
                position += 1
                sent += 1
            if sent == plan.cut_after:
                if position < len(self.batches):
                    line = self.batches[position][1]
                    await response.write(line[: len(line) // 2])
                assert request.transport is not None
                request.transport.close()
                return response
            if sent == plan.close_after:
                await response.write_eof()
                return response
            # Nomad keeps the stream open until the client leaves, sending batches as they happen.
            await self.published.wait()
            self.published.clear()


@pytest.fixture
async def fake_stream() -> AsyncIterator[FakeEventStream]:
    fake = FakeEventStream()
    app = web.Application()
    app.router.add_get("/v1/event/stream", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def nomad(fake_stream: FakeEventStream) -> AsyncIterator[NomadClient]:
    async with NomadClient(NomadSettings(address=fake_stream.url, token=TOKEN)) as client:
        yield client


async def collect(stream: EventStream, *, until_index: int) -> list[EventBatch | StreamReset]:
    """Everything the stream yields until the batch at `until_index` (bounded by a deadline, never a sleep)."""
    items: list[EventBatch | StreamReset] = []
    async with asyncio.timeout(30), stream:
        async for item in stream:
            items.append(item)
            if isinstance(item, EventBatch) and item.index >= until_index:
                break
    return items


def sparse_indices(count: int, *, seed: int) -> list[int]:
    """Raft indexes with gaps, as on a real cluster (not every raft write yields an event)."""
    rng = random.Random(seed)
    indices, index = [], 10
    for _ in range(count):
        index += rng.randint(1, 4)
        indices.append(index)
    return indices


async def test_cuts_mid_burst_lose_nothing_and_repeat_nothing(fake_stream: FakeEventStream, nomad: NomadClient) -> None:
    indices = sparse_indices(300, seed=3)
    fake_stream.publish(indices, events=2)
    fake_stream.plans = [Plan(cut_after=40), Plan(cut_after=0), Plan(rewind=5, cut_after=75), Plan(close_after=10)]
    stream = nomad.event_stream({"Allocation": ["web"]}, backoff=FAST_BACKOFF)

    items = await collect(stream, until_index=indices[-1])

    batches = [item for item in items if isinstance(item, EventBatch)]
    resets = [item for item in items if isinstance(item, StreamReset)]
    assert [batch.index for batch in batches] == indices
    assert all(len(batch.events) == 2 and batch.events[0].index == batch.index for batch in batches)
    assert len(resets) == 4
    assert stream.dropped_batches == 5  # the rewound replay, dropped as already seen
    # Every reconnect asked for one past the last batch seen, and said so in its reset.
    expected_resumes, last = [], 0
    for item in items:
        if isinstance(item, StreamReset):
            expected_resumes.append(last + 1)
            assert item.resume_index == last + 1
        else:
            last = item.index
    assert fake_stream.requested == [1, *expected_resumes]
    assert fake_stream.topics[0] == ["Allocation:web"]
    assert fake_stream.tokens == [TOKEN] * 5
    assert stream.heartbeats == 5


async def test_a_silent_stream_is_dropped_after_the_idle_timeout(
    fake_stream: FakeEventStream, nomad: NomadClient
) -> None:
    fake_stream.publish([5, 6, 7])
    fake_stream.plans = [Plan(silent=True)]
    stream = nomad.event_stream(["Allocation"], backoff=FAST_BACKOFF, idle_timeout=0.3)

    items = await collect(stream, until_index=7)

    assert isinstance(items[0], StreamReset)
    assert "heartbeat" in items[0].reason
    assert [item.index for item in items[1:] if isinstance(item, EventBatch)] == [5, 6, 7]
    assert fake_stream.requested == [1, 1]


async def test_a_garbage_line_is_logged_and_the_stream_reconnects(
    fake_stream: FakeEventStream, nomad: NomadClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake_stream.publish([20, 21, 22, 23])
    fake_stream.plans = [Plan(garbage_after=2)]
    stream = nomad.event_stream(["Allocation"], backoff=FAST_BACKOFF)

    with caplog.at_level(logging.WARNING, logger="nomad_operator.nomad.events"):
        items = await collect(stream, until_index=23)

    assert [type(item).__name__ for item in items] == [
        "EventBatch",
        "EventBatch",
        "StreamReset",
        "EventBatch",
        "EventBatch",
    ]
    assert [item.index for item in items if isinstance(item, EventBatch)] == [20, 21, 22, 23]
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "not JSON" in errors[0].getMessage()
    assert "502 Bad Gateway" in errors[0].getMessage()
    assert fake_stream.requested == [1, 22]


async def test_a_3_mb_line_is_read_whole(fake_stream: FakeEventStream, nomad: NomadClient) -> None:
    blob = "".join(random.Random(5).choices("abcdefghij", k=3 * 1024 * 1024))
    fake_stream.publish([30], payload=blob)
    fake_stream.publish([31])
    stream = nomad.event_stream(["Allocation"], backoff=FAST_BACKOFF)

    items = await collect(stream, until_index=31)

    assert [type(item) for item in items] == [EventBatch, EventBatch]
    big = items[0]
    assert isinstance(big, EventBatch)
    assert big.events[0].object is not None
    assert big.events[0].object["Blob"] == blob


async def test_a_line_over_the_limit_is_skipped_with_a_reset(fake_stream: FakeEventStream, nomad: NomadClient) -> None:
    fake_stream.publish([40])
    fake_stream.publish([41], payload="x" * 200_000)
    fake_stream.publish([42, 43])
    stream = nomad.event_stream(["Allocation"], backoff=FAST_BACKOFF, max_line_bytes=100_000)

    items = await collect(stream, until_index=43)

    assert [item.index for item in items if isinstance(item, EventBatch)] == [40, 42, 43]
    resets = [item for item in items if isinstance(item, StreamReset)]
    assert len(resets) == 1
    assert "longer than 100000 bytes" in resets[0].reason
    assert stream.skipped_lines == 1
    assert fake_stream.requested == [1]  # skipped in place, no reconnect needed


async def test_an_index_older_than_the_buffer_starts_at_the_oldest(
    fake_stream: FakeEventStream, nomad: NomadClient
) -> None:
    fake_stream.publish(list(range(150, 250)))
    stream = nomad.event_stream(["Allocation"], after_index=5, backoff=FAST_BACKOFF)

    items = await collect(stream, until_index=249)

    assert [item.index for item in items if isinstance(item, EventBatch)] == list(range(150, 250))
    assert fake_stream.requested == [6]


async def test_a_gap_after_a_reconnect_is_announced_before_the_later_batches(
    fake_stream: FakeEventStream, nomad: NomadClient
) -> None:
    fake_stream.publish(list(range(1, 301)))
    # While the client is away, the server's 100-batch buffer moves on: 11..200 are gone for good.
    fake_stream.plans = [Plan(cut_after=10), Plan(drop_older_than=201)]
    stream = nomad.event_stream(["Allocation"], backoff=FAST_BACKOFF)

    items = await collect(stream, until_index=300)

    positions = {item.index: n for n, item in enumerate(items) if isinstance(item, EventBatch)}
    (reset_position,) = [n for n, item in enumerate(items) if isinstance(item, StreamReset)]
    assert sorted(positions) == [*range(1, 11), *range(201, 301)]
    assert positions[10] < reset_position < positions[201]


async def test_a_future_index_resends_the_newest_batch_which_is_dropped(
    fake_stream: FakeEventStream, nomad: NomadClient
) -> None:
    fake_stream.publish([50, 51])
    fake_stream.plans = [Plan(cut_after=2)]
    stream = nomad.event_stream(["Allocation"], backoff=FAST_BACKOFF)
    items: list[EventBatch | StreamReset] = []

    async with asyncio.timeout(30), stream:
        async for item in stream:
            items.append(item)
            if isinstance(item, StreamReset):
                fake_stream.publish([55])  # what happens while the client reconnects
            if isinstance(item, EventBatch) and item.index == 55:
                break

    assert [item.index for item in items if isinstance(item, EventBatch)] == [50, 51, 55]
    assert fake_stream.requested == [1, 52]


async def test_5xx_and_429_reconnect(fake_stream: FakeEventStream, nomad: NomadClient) -> None:
    fake_stream.publish([60, 61])
    fake_stream.plans = [Plan(status=500, text="rpc error: No cluster leader"), Plan(status=429, text="slow down")]
    stream = nomad.event_stream(["Allocation"], backoff=FAST_BACKOFF)

    items = await collect(stream, until_index=61)

    assert isinstance(items[0], StreamReset)
    assert "slow down" in items[0].reason  # the reason of the latest failure
    assert [item.index for item in items[1:] if isinstance(item, EventBatch)] == [60, 61]
    assert stream.reconnects == 2


@pytest.mark.parametrize(
    ("status", "text", "error_class"),
    [
        (403, "Permission denied", PermissionDenied),
        (400, "Invalid topic query: too many colons", BadRequest),
    ],
)
async def test_refusals_are_raised_not_retried(
    fake_stream: FakeEventStream,
    nomad: NomadClient,
    status: int,
    text: str,
    error_class: type[Exception],
) -> None:
    fake_stream.plans = [Plan(status=status, text=text)]
    stream = nomad.event_stream(["Allocation"], backoff=FAST_BACKOFF)

    with pytest.raises(error_class, match=text):
        await collect(stream, until_index=1)

    assert fake_stream.requested == [1]


async def test_closing_the_stream_ends_iteration(fake_stream: FakeEventStream, nomad: NomadClient) -> None:
    fake_stream.publish([70, 71, 72])
    stream = nomad.event_stream(["Allocation"], backoff=FAST_BACKOFF)

    first = await collect(stream, until_index=70)
    rest = [item async for item in stream]

    assert [item.index for item in first if isinstance(item, EventBatch)] == [70]
    assert rest == []
    assert stream.last_index == 70
