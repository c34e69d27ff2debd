"""Nomad's event-stream protocol as pure data and decisions: frames, topic queries, and where to resume.

Kept apart from the connection handling so that the parts that decide correctness can be tested without a network:
- decoding a line: one `orjson.loads` per line and one small slots object per event, payloads never copied (the stream
  must keep up with tens of thousands of ~2 KB allocation events a second on a Raspberry Pi class core);
- the topic query, which Nomad rejects with 400 when a topic has more than one colon;
- the cursor: Nomad re-sends the batch at the requested index (the index is inclusive), re-sends its newest batch when
  asked for a future index, and silently starts at its oldest buffered batch when asked for one it has dropped. So a
  consumer resumes at `last + 1` and drops every batch whose index is not above the last one it saw: no batch is
  handled twice, whatever the server replays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from nomad_operator.nomad.defaults import EVENT_STREAM_LOG_PREVIEW_BYTES
from nomad_operator.nomad.errors import StreamProtocolError

TopicSpec = Mapping[str, Sequence[str]] | Iterable[str]
"""Topics to subscribe to: `{"Job": ["*"], "Allocation": ["myjob"]}`, or strings `"Job"`, `"Allocation:myjob"`."""

_NO_FILTER_KEYS: tuple[str, ...] = ()
# The payload wraps the object in one key, named after the topic except for these.
_PAYLOAD_KEY_BY_TOPIC = {"Variable": "Metadata"}


@dataclass(slots=True, frozen=True)
class Event:
    """One event. `payload` is Nomad's payload as decoded (`{"Allocation": {...}}`), shared, never copied: treat it
    as read-only. `namespace` is "" for objects without one (nodes, ACL objects)."""

    topic: str
    type: str
    key: str
    namespace: str
    filter_keys: Sequence[str]
    index: int
    payload: dict[str, Any]

    @property
    def object(self) -> dict[str, Any] | None:
        """The object inside the payload (the Allocation, Job, Node...), or None when the payload lacks it."""
        inner = self.payload.get(_PAYLOAD_KEY_BY_TOPIC.get(self.topic, self.topic))
        return inner if isinstance(inner, dict) else None

    @property
    def deleted(self) -> bool:
        """True for a purge or delete (Nomad 2.0+ marks these with `"Deleted": true` in the payload)."""
        return self.payload.get("Deleted") is True


@dataclass(slots=True, frozen=True)
class EventBatch:
    """The events of one raft index, in Nomad's order."""

    index: int
    events: list[Event]


@dataclass(slots=True, frozen=True)
class StreamReset:
    """The stream reconnected (or skipped a batch): events may have been missed, so re-list before trusting a cache.

    `resume_index` is the index the stream asked Nomad to resume from; batches after this item are above it.
    """

    reason: str
    resume_index: int


def decode_line(line: bytes) -> EventBatch | None:
    """The batch on one NDJSON line, or None for a `{}` heartbeat. `StreamProtocolError` for anything else."""
    try:
        frame = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise StreamProtocolError(f"event stream line is not JSON ({error}): {preview(line)}") from None
    if type(frame) is not dict:
        raise StreamProtocolError(f"event stream line is not a JSON object: {preview(line)}")
    if not frame:
        return None
    index = frame.get("Index")
    raw_events = frame.get("Events")
    if type(index) is not int or type(raw_events) is not list:
        raise StreamProtocolError(f"event stream line lacks an integer Index and an Events list: {preview(line)}")
    try:
        events = [
            Event(
                raw["Topic"],
                raw["Type"],
                raw["Key"],
                raw.get("Namespace") or "",
                raw.get("FilterKeys") or _NO_FILTER_KEYS,
                raw.get("Index") or index,
                raw.get("Payload") or {},
            )
            for raw in raw_events
        ]
    except (KeyError, TypeError, AttributeError) as error:
        raise StreamProtocolError(f"event stream batch {index} holds a malformed event ({error!r})") from None
    return EventBatch(index, events)


def preview(line: bytes, *, limit: int = EVENT_STREAM_LOG_PREVIEW_BYTES) -> str:
    """The start of a line for a log message: enough to recognise it, never a whole multi-MiB payload."""
    shown = line[:limit].decode("utf-8", errors="replace")
    return repr(shown) + (f" … ({len(line)} bytes)" if len(line) > limit else "")


def topic_params(topics: TopicSpec) -> list[tuple[str, str]]:
    """The repeated `topic=Topic:key` query parameters for `topics`, validated as Nomad would."""
    if isinstance(topics, str):
        topics = [topics]
    pairs: list[tuple[str, str]] = []
    if isinstance(topics, Mapping):
        for topic, keys in topics.items():
            if isinstance(keys, str):
                raise TypeError(f"the keys of topic {topic!r} must be a list of strings, not the string {keys!r}")
            for key in keys or ["*"]:
                pairs.append(("topic", _topic_key(f"{topic}:{key}")))
    else:
        for entry in topics:
            pairs.append(("topic", _topic_key(entry if ":" in entry else f"{entry}:*")))
    if not pairs:
        raise ValueError('choose at least one topic; {"*": ["*"]} subscribes to everything')
    return pairs


def _topic_key(text: str) -> str:
    topic, _, key = text.partition(":")
    if not topic or not key or ":" in key:
        raise ValueError(f"a topic must be 'Topic' or 'Topic:key' with one colon, got {text!r}")
    return text


class LineSplitter:
    """Cuts a byte stream into lines, holding at most `max_line_bytes` of an unfinished line.

    aiohttp's own `readline` raises `LineTooLong` above its buffer size and joins partial lines quadratically; this
    splits each large read once and joins a long line's pieces once. A line longer than the limit is never held: it
    comes out as None (in its place among the other lines) so the reader can say that a batch was skipped.
    """

    def __init__(self, *, max_line_bytes: int) -> None:
        if max_line_bytes < 2:
            raise ValueError(f"max_line_bytes must be at least 2, got {max_line_bytes}")
        self._max = max_line_bytes
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._skipping = False

    def feed(self, chunk: bytes) -> list[bytes | None]:
        """The lines completed by `chunk` (without their newlines), None for each line over the limit."""
        cut = chunk.find(b"\n")
        if cut < 0:
            self._pending_size += len(chunk)
            if not self._skipping:
                if self._pending_size > self._max:
                    self._skipping = True
                    self._pending.clear()
                else:
                    self._pending.append(chunk)
            return []
        first_skipped = self._skipping or (self._pending_size > 0 and self._pending_size + cut > self._max)
        if first_skipped:
            chunk = chunk[cut + 1 :]
        elif self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        self._skipping = False
        lines: list[bytes | None] = list(chunk.split(b"\n"))
        tail = lines.pop()
        if len(chunk) > self._max:
            lines = [line if line is None or len(line) <= self._max else None for line in lines]
        if first_skipped:
            lines.insert(0, None)
        if tail:
            self.feed(tail)
        return lines


class StreamCursor:
    """Which batches are new, and where to resume: the dedupe and resume rule of the stream, pure."""

    def __init__(self, *, after_index: int = 0) -> None:
        if after_index < 0:
            raise ValueError(f"an index must not be negative, got {after_index}")
        self.last_index = after_index
        self.dropped = 0
        self._replay_possible = True

    @property
    def resume_index(self) -> int:
        """The index to ask Nomad for on (re)connect: one above the last batch seen."""
        return self.last_index + 1

    def connected(self) -> None:
        """A new connection began: until a newer batch arrives, one at the last index is a replay.

        Nomad answers an index beyond its newest batch by re-sending the newest one, and an index older than its
        buffer by starting at the oldest: both replay what was seen.
        """
        self._replay_possible = True

    def admit(self, index: int) -> bool:
        """True for a batch not seen before, which then becomes the last.

        Within one connection an equal index is new: Nomad sends the write transactions of one raft index as separate
        lines with the same Index (a register's Job event, then its Evaluation event). Right after a (re)connect, an
        equal index is a replay and is dropped.
        """
        if index < self.last_index or (index == self.last_index and self._replay_possible):
            self.dropped += 1
            return False
        self._replay_possible = False
        self.last_index = index
        return True
