"""The event broker: Nomad's `/v1/event/stream` semantics, encoded once and fanned out as bytes.

Informers depend on the details: every event of one write carries the raft message's Type; a batch is
`{"Events":[...],"Index":N}`; a buffer of the last 100 batches serves resumes, inclusive of the requested index and
silently starting at the oldest batch when the index fell out; topic filters match `Topic:key` against Key or
FilterKeys exactly; namespaced events pass only for the subscribed namespace. The hazard is cost: with hundreds of
allocations changing at once, encoding per subscriber would dominate, so each event is encoded once with orjson and
each batch line is prebuilt for the common unfiltered subscriber. A subscriber that falls too far behind is dropped and
its stream closed, as Nomad does, instead of letting memory grow without bound.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nomad_operator.sim.config import EVENT_BUFFER_SIZE, SUBSCRIBER_QUEUE_BATCHES
from nomad_operator.sim.encoding import dumps

ALL = "*"


class InvalidTopic(ValueError):
    """A `topic` query parameter Nomad would reject."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event before encoding; Type is given by the write that produced it, not by the object."""

    topic: str
    key: str
    namespace: str
    filter_keys: tuple[str, ...] | None
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    topic: str
    key: str
    namespace: str
    filter_keys: tuple[str, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class EventBatch:
    index: int
    events: tuple[EncodedEvent, ...]
    line: bytes  # the whole batch as one NDJSON line, for subscribers that filter nothing


def parse_topics(values: Sequence[str]) -> dict[str, frozenset[str]]:
    """`topic` params to {Topic: keys}; no params means everything (`*:*`), a bare Topic means `Topic:*`."""
    if not values:
        return {ALL: frozenset({ALL})}
    topics: dict[str, set[str]] = {}
    for value in values:
        parts = value.split(":")
        if len(parts) > 2 or not parts[0]:
            raise InvalidTopic(f"Invalid topic query: {value}")
        key = parts[1] if len(parts) == 2 and parts[1] else ALL
        topics.setdefault(parts[0], set()).add(key)
    return {topic: frozenset(keys) for topic, keys in topics.items()}


def _batch_line(index: int, event_bytes: Iterable[bytes]) -> bytes:
    # Keys sorted as Nomad's encoder writes them: "Events" < "Index".
    return b'{"Events":[' + b",".join(event_bytes) + b'],"Index":' + str(index).encode() + b"}\n"


class Subscription:
    """One open stream: a bounded backlog of lines, closed when cut, dropped when too slow, or unsubscribed."""

    def __init__(self, *, topics: Mapping[str, frozenset[str]], namespace: str, max_backlog: int) -> None:
        self._topics = dict(topics)
        self._namespace = namespace
        self._everything = ALL in topics and ALL in topics[ALL] and namespace == ALL
        self._lines: collections.deque[bytes] = collections.deque()
        self._max_backlog = max_backlog
        self._wakeup = asyncio.Event()
        self.closed = False
        self.dropped = False

    def _matches(self, event: EncodedEvent) -> bool:
        if event.namespace and self._namespace != ALL and event.namespace != self._namespace:
            return False
        for topic in (event.topic, ALL):
            keys = self._topics.get(topic)
            if keys is None:
                continue
            if ALL in keys or event.key in keys or any(key in keys for key in event.filter_keys):
                return True
        return False

    def render(self, batch: EventBatch) -> bytes | None:
        if self._everything:
            return batch.line
        selected = [event.data for event in batch.events if self._matches(event)]
        if not selected:
            return None  # Nomad skips batches that filtering leaves empty
        return _batch_line(batch.index, selected)

    @property
    def backlog(self) -> int:
        """Lines waiting to be written to this subscriber."""
        return len(self._lines)

    def offer(self, batch: EventBatch) -> None:
        if self.closed:
            return
        line = self.render(batch)
        if line is None:
            return
        if len(self._lines) >= self._max_backlog:
            self.dropped = True
            self.close()
            return
        self._lines.append(line)
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True
        self._lines.clear()
        self._wakeup.set()

    async def next_line(self, *, timeout: float) -> bytes | None:  # noqa: ASYNC109
        """The next line; None when `timeout` passed with nothing to send (time for a heartbeat) or when closed."""
        if not self._lines and not self.closed:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                return None
        if self._lines:
            return self._lines.popleft()
        return None


class EventBroker:
    """Keeps the last `buffer_size` batches and hands each new one to every subscription."""

    def __init__(self, *, buffer_size: int = EVENT_BUFFER_SIZE, max_backlog: int = SUBSCRIBER_QUEUE_BATCHES) -> None:
        self._buffer: collections.deque[EventBatch] = collections.deque(maxlen=buffer_size)
        self._subscriptions: set[Subscription] = set()
        self._max_backlog = max_backlog
        self.published = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    @property
    def largest_backlog(self) -> int:
        """The most lines any subscriber has waiting: lets a load generator keep below the drop threshold."""
        return max((subscription.backlog for subscription in self._subscriptions), default=0)

    def publish(self, *, index: int, event_type: str, events: Sequence[Event]) -> None:
        if not events:
            return
        encoded = tuple(self._encode(index, event_type, event) for event in events)
        batch = EventBatch(index=index, events=encoded, line=_batch_line(index, (e.data for e in encoded)))
        self._buffer.append(batch)
        self.published += 1
        for subscription in list(self._subscriptions):
            subscription.offer(batch)
            if subscription.closed:
                self._subscriptions.discard(subscription)

    @staticmethod
    def _encode(index: int, event_type: str, event: Event) -> EncodedEvent:
        data = dumps(
            {
                "FilterKeys": list(event.filter_keys) if event.filter_keys is not None else None,
                "Index": index,
                "Key": event.key,
                "Namespace": event.namespace,
                "Payload": event.payload,
                "Topic": event.topic,
                "Type": event_type,
            }
        )
        return EncodedEvent(event.topic, event.key, event.namespace, event.filter_keys or (), data)

    def subscribe(self, *, index: int, topics: Mapping[str, frozenset[str]], namespace: str) -> Subscription:
        subscription = Subscription(topics=topics, namespace=namespace, max_backlog=self._max_backlog)
        for batch in self._replay_from(index):
            subscription.offer(batch)
        self._subscriptions.add(subscription)
        return subscription

    def _replay_from(self, index: int) -> list[EventBatch]:
        if not self._buffer:
            return []
        if index <= self._buffer[0].index:
            return list(self._buffer)  # 0 or an index older than the buffer: silently start at the oldest
        if index > self._buffer[-1].index:
            return [self._buffer[-1]]  # beyond the newest: Nomad re-sends the newest batch
        return [batch for batch in self._buffer if batch.index >= index]

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        subscription.close()

    def close_all(self) -> int:
        """Cut every open stream (the fault API's `events/cut`); returns how many were closed."""
        closed = list(self._subscriptions)
        self._subscriptions.clear()
        for subscription in closed:
            subscription.close()
        return len(closed)
