"""`EventStream`: Nomad's `/v1/event/stream` as an async iterator that survives everything but a refusal.

Informers build their caches from this stream, so the hazards are the ones that make a cache silently wrong:
- a dead connection that looks alive (half-open TCP, a hung proxy): Nomad sends `{}` at connect and every 30 s, so a
  stream that sent nothing at all for the idle timeout (45 s) is dropped and reopened;
- replays and gaps: Nomad re-sends the batch at the requested index and silently starts at its oldest buffered batch
  when that index has been dropped; the stream resumes at `last + 1`, drops batches it has seen (`StreamCursor`), and
  yields a `StreamReset` on every reconnect so the consumer re-lists instead of trusting a cache with a possible gap;
- a dying iterator (python-nomad's stream thread dies silently): connection errors, clean closes, 5xx, 429 and garbage
  lines are logged and followed by a reconnect with capped exponential backoff and jitter; only answers that will not
  change by retrying (400, 403, 404) are raised to the consumer;
- huge lines: lines are split by hand from large reads (no `LineTooLong`, no quadratic joins); a line over the limit
  is skipped with a `StreamReset` (re-reading it would hit the limit again);
- speed: one `orjson.loads` per line, the idle timer armed once per read rather than per line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, aclosing
from types import TracebackType
from typing import Protocol, Self

import aiohttp

from nomad_operator.nomad.defaults import (
    DEFAULT_EVENT_NAMESPACE,
    EVENT_STREAM_IDLE_TIMEOUT,
    EVENT_STREAM_MAX_LINE_BYTES,
    EVENT_STREAM_STABLE_AFTER,
)
from nomad_operator.nomad.errors import (
    NomadUnreachable,
    ServerError,
    StreamProtocolError,
    TooManyRequests,
)
from nomad_operator.nomad.event_protocol import (
    EventBatch,
    LineSplitter,
    StreamCursor,
    StreamReset,
    TopicSpec,
    decode_line,
    topic_params,
)
from nomad_operator.nomad.retry import DEFAULT_BACKOFF, Backoff

logger = logging.getLogger(__name__)

EVENT_STREAM_PATH = "/v1/event/stream"


class StreamOpener(Protocol):
    """What the stream needs from a client: a GET whose body it reads itself (`NomadClient.open_stream`)."""

    def open_stream(
        self, path: str, params: Sequence[tuple[str, str]]
    ) -> AbstractAsyncContextManager[aiohttp.StreamReader]: ...


class _StreamIdle(Exception):
    """Nothing arrived, not even a heartbeat, for the idle timeout."""


_RECONNECT_ON = (NomadUnreachable, ServerError, TooManyRequests, StreamProtocolError, _StreamIdle)


class EventStream:
    """Batches of events from `after_index` on, for `topics` in `namespace` ("*" = all), across reconnects.

    Iterate it (once) to get `EventBatch` items, and a `StreamReset` before the batches of every new connection
    but the first. Close it with `aclose()` or by using it as an async context manager.
    """

    def __init__(
        self,
        client: StreamOpener,
        topics: TopicSpec,
        *,
        after_index: int = 0,
        namespace: str = DEFAULT_EVENT_NAMESPACE,
        idle_timeout: float = EVENT_STREAM_IDLE_TIMEOUT,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_line_bytes: int = EVENT_STREAM_MAX_LINE_BYTES,
        stable_after: float = EVENT_STREAM_STABLE_AFTER,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout}")
        self._client = client
        self._topics = topic_params(topics)
        self._namespace = namespace
        self._idle_timeout = idle_timeout
        self._backoff = backoff
        self._max_line_bytes = max_line_bytes
        self._stable_after = stable_after
        self._cursor = StreamCursor(after_index=after_index)
        self._generator: AsyncGenerator[EventBatch | StreamReset, None] | None = None
        self.heartbeats = 0
        """`{}` lines received: proof of life on a quiet cluster."""
        self.connections = 0
        self.reconnects = 0
        self.skipped_lines = 0

    @property
    def last_index(self) -> int:
        """The index of the last batch yielded (or `after_index` before any)."""
        return self._cursor.last_index

    @property
    def dropped_batches(self) -> int:
        """Batches Nomad sent again that were dropped as already seen."""
        return self._cursor.dropped

    def __aiter__(self) -> AsyncIterator[EventBatch | StreamReset]:
        if self._generator is None:
            self._generator = self._run()
        return self._generator

    async def aclose(self) -> None:
        """Stop streaming and close the connection."""
        if self._generator is not None:
            await self._generator.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[EventBatch | StreamReset, None]:
        failures = 0
        reset_reason: str | None = None
        while True:
            connected_at: float | None = None
            try:
                params = [("index", str(self._cursor.resume_index)), ("namespace", self._namespace), *self._topics]
                async with self._client.open_stream(EVENT_STREAM_PATH, params) as content:
                    connected_at = time.monotonic()
                    self.connections += 1
                    self._cursor.connected()
                    if reset_reason is not None:
                        yield StreamReset(reset_reason, self._cursor.resume_index)
                        reset_reason = None
                    async with aclosing(self._read(content)) as items:
                        async for item in items:
                            if type(item) is EventBatch:
                                failures = 0
                            yield item
                reason = "the server closed the stream"
            except _RECONNECT_ON as error:
                reason = str(error) or type(error).__name__
            if connected_at is not None and time.monotonic() - connected_at >= self._stable_after:
                failures = 0
            delay = self._backoff.delay(failures)
            failures += 1
            self.reconnects += 1
            reset_reason = reason
            logger.warning(
                "event stream: %s; reconnecting from index %d in %.2fs", reason, self._cursor.resume_index, delay
            )
            await asyncio.sleep(delay)

    async def _read(self, content: aiohttp.StreamReader) -> AsyncGenerator[EventBatch | StreamReset, None]:
        """Batches from one connection until it ends; heartbeats are counted, seen batches dropped."""
        cursor = self._cursor
        splitter = LineSplitter(max_line_bytes=self._max_line_bytes)
        while True:
            try:
                # Armed once per read, not per line: a read returns everything buffered, often hundreds of lines.
                async with asyncio.timeout(self._idle_timeout):
                    chunk = await content.readany()
            except TimeoutError:
                raise _StreamIdle(
                    f"nothing received for {self._idle_timeout:g}s, not even a heartbeat: the stream is dead"
                ) from None
            if not chunk:
                return
            for line in splitter.feed(chunk):
                if line is None:
                    self.skipped_lines += 1
                    reason = f"an event line longer than {self._max_line_bytes} bytes was skipped"
                    logger.error("event stream: %s; events may have been missed", reason)
                    yield StreamReset(reason, cursor.resume_index)
                    continue
                if not line:
                    continue
                try:
                    batch = decode_line(line)
                except StreamProtocolError as error:
                    logger.error("event stream: %s", error)
                    raise
                if batch is None:
                    self.heartbeats += 1
                elif cursor.admit(batch.index):
                    yield batch
