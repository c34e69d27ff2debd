"""The pure event-stream protocol: line decoding, topic queries, and the dedupe/resume cursor against Nomad's rules."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nomad_operator.nomad.errors import StreamProtocolError
from nomad_operator.nomad.event_protocol import (
    Event,
    EventBatch,
    LineSplitter,
    StreamCursor,
    decode_line,
    topic_params,
)

ALLOCATION_EVENT = {
    "Topic": "Allocation",
    "Type": "PlanResult",
    "Key": "a1",
    "Namespace": "default",
    "FilterKeys": ["web", "d1"],
    "Index": 12,
    "Payload": {"Allocation": {"ID": "a1", "JobID": "web"}},
}


def test_a_batch_line_decodes_to_events() -> None:
    node_event = {
        "Topic": "Node",
        "Type": "NodeStreamEvent",
        "Key": "n1",
        "Namespace": "",
        "FilterKeys": None,
        "Index": 12,
        "Payload": {"Node": {"ID": "n1", "Status": "down"}},
    }
    line = orjson.dumps({"Events": [ALLOCATION_EVENT, node_event], "Index": 12})

    batch = decode_line(line)

    assert batch == EventBatch(
        12,
        [
            Event("Allocation", "PlanResult", "a1", "default", ["web", "d1"], 12, ALLOCATION_EVENT["Payload"]),  # type: ignore[arg-type]
            Event("Node", "NodeStreamEvent", "n1", "", (), 12, {"Node": {"ID": "n1", "Status": "down"}}),
        ],
    )
    assert batch.events[0].object == {"ID": "a1", "JobID": "web"}
    assert batch.events[1].filter_keys == ()


def test_a_heartbeat_is_none() -> None:
    assert decode_line(b"{}") is None


def test_variable_events_keep_their_metadata_and_deleted_flag() -> None:
    event = {
        "Topic": "Variable",
        "Type": "VariableUpdated",
        "Key": "op/status",
        "Namespace": "default",
        "FilterKeys": None,
        "Index": 3,
        "Payload": {"Metadata": {"Path": "op/status"}, "Deleted": True},
    }
    batch = decode_line(orjson.dumps({"Events": [event], "Index": 3}))

    assert batch is not None
    assert batch.events[0].object == {"Path": "op/status"}
    assert batch.events[0].deleted is True


def test_a_job_event_without_deleted_is_not_deleted() -> None:
    event = {**ALLOCATION_EVENT, "Topic": "Job", "Payload": {"Job": {"ID": "web", "Stop": True}}}
    batch = decode_line(orjson.dumps({"Events": [event], "Index": 12}))

    assert batch is not None
    assert batch.events[0].deleted is False
    assert batch.events[0].object == {"ID": "web", "Stop": True}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"<html>502</html>", "not JSON"),
        (b'{"Index": 3, "Events": [', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (b'{"Index": "3", "Events": []}', "lacks an integer Index"),
        (b'{"Index": 3}', "lacks an integer Index"),
        (b'{"Index": 3, "Events": [{"Topic": "Job"}]}', "malformed event"),
        (b'{"Index": 3, "Events": [7]}', "malformed event"),
    ],
)
def test_garbage_lines_are_protocol_errors(line: bytes, message: str) -> None:
    with pytest.raises(StreamProtocolError, match=message):
        decode_line(line)


def test_protocol_errors_show_only_the_start_of_a_huge_line() -> None:
    with pytest.raises(StreamProtocolError) as raised:
        decode_line(b"x" * 1_000_000)

    assert len(str(raised.value)) < 400
    assert "1000000 bytes" in str(raised.value)


@pytest.mark.parametrize(
    ("topics", "expected"),
    [
        ({"Job": ["*"], "Allocation": ["web", "api"]}, ["Job:*", "Allocation:web", "Allocation:api"]),
        ({"Node": []}, ["Node:*"]),
        (["Job", "Allocation:web"], ["Job:*", "Allocation:web"]),
        ("Deployment", ["Deployment:*"]),
        ({"*": ["*"]}, ["*:*"]),
    ],
)
def test_topic_params(topics: object, expected: list[str]) -> None:
    assert topic_params(topics) == [("topic", value) for value in expected]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("topics", "error"),
    [
        ([], ValueError),
        ({}, ValueError),
        (["Job:a:b"], ValueError),
        ([":web"], ValueError),
        ({"Job": ["a:b"]}, ValueError),
        ({"Job": "web"}, TypeError),
    ],
)
def test_bad_topics_are_refused(topics: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        topic_params(topics)  # type: ignore[arg-type]


@given(
    lines=st.lists(st.binary(max_size=40).map(lambda raw: raw.replace(b"\n", b"")), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
    unfinished=st.binary(max_size=60).map(lambda raw: raw.replace(b"\n", b"")),
)
def test_splitter_gives_every_line_once_whatever_the_chunking(
    lines: list[bytes], cuts: list[int], unfinished: bytes
) -> None:
    limit = 20
    stream = b"".join(line + b"\n" for line in lines) + unfinished
    splitter = LineSplitter(max_line_bytes=limit)
    out: list[bytes | None] = []
    bounds = [0, *sorted(cut for cut in cuts if cut < len(stream)), len(stream)]
    for start, end in itertools.pairwise(bounds):
        if end > start:
            out.extend(splitter.feed(stream[start:end]))

    assert out == [line if len(line) <= limit else None for line in lines]


def test_splitter_joins_a_long_line_from_many_pieces() -> None:
    splitter = LineSplitter(max_line_bytes=10_000_000)
    line = bytes(range(11, 256)) * 12_000  # 2.9 MB, no newline inside
    pieces = [line[offset : offset + 65_536] for offset in range(0, len(line), 65_536)]

    out = [got for piece in pieces for got in splitter.feed(piece)] + splitter.feed(b"\n{}\n")

    assert out == [line, b"{}"]


def test_splitter_refuses_a_useless_limit() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        LineSplitter(max_line_bytes=1)


def test_cursor_admits_only_new_indexes() -> None:
    cursor = StreamCursor(after_index=10)

    assert cursor.resume_index == 11
    # 11 twice: one raft index, two write transactions (a register's Job and Evaluation events), both new.
    assert [cursor.admit(index) for index in (9, 10, 11, 11, 15, 12, 16)] == [
        False,
        False,
        True,
        True,
        True,
        False,
        True,
    ]
    assert (cursor.last_index, cursor.resume_index, cursor.dropped) == (16, 17, 3)


def test_cursor_drops_a_replay_of_the_last_index_after_a_reconnect() -> None:
    cursor = StreamCursor(after_index=0)
    assert [cursor.admit(index) for index in (5, 5)] == [True, True]

    cursor.connected()  # Nomad re-sends its newest batch when asked for an index beyond it

    assert [cursor.admit(index) for index in (5, 5, 6, 6)] == [False, False, True, True]
    assert cursor.dropped == 2


def test_cursor_refuses_a_negative_start() -> None:
    with pytest.raises(ValueError, match="negative"):
        StreamCursor(after_index=-1)


class NomadBuffer:
    """Nomad's event buffer as described in nomad-api-facts §3: bounded, inclusive, closest-start."""

    def __init__(self, indices: list[int], capacity: int) -> None:
        self.indices = indices
        self.capacity = capacity

    def buffered(self, published: int) -> list[int]:
        """The batches still held once the first `published` batches have happened."""
        return self.indices[:published][-self.capacity :]

    def replay(self, requested: int, *, published: int) -> list[int]:
        """What Nomad sends for `?index=requested`."""
        buffered = self.buffered(published)
        if not buffered:
            return []
        if requested > buffered[-1]:
            return [buffered[-1]]  # a future index re-sends the newest batch
        return [index for index in buffered if index >= requested]  # inclusive; the oldest when too old


@st.composite
def stream_histories(draw: st.DrawFn) -> tuple[list[int], int, int, list[tuple[int, int]]]:
    gaps = draw(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=60))
    indices = [sum(gaps[: n + 1]) for n in range(len(gaps))]
    capacity = draw(st.integers(min_value=1, max_value=100))
    after_index = draw(st.sampled_from([0, *indices]))
    # Each connection: how many batches have happened when it starts, and how many lines it delivers before a cut.
    connections = draw(
        st.lists(
            st.tuples(st.integers(min_value=0, max_value=len(indices)), st.integers(min_value=0, max_value=80)),
            max_size=8,
        )
    )
    return indices, capacity, after_index, connections


@given(stream_histories())
def test_cursor_never_repeats_and_gets_everything_nomad_still_holds(
    history: tuple[list[int], int, int, list[tuple[int, int]]],
) -> None:
    indices, capacity, after_index, connections = history
    nomad = NomadBuffer(indices, capacity)
    cursor = StreamCursor(after_index=after_index)
    seen: list[int] = []
    published = 0
    # The cut connections, then one that stays up until everything has happened.
    for happened, delivered in [*connections, (len(indices), len(indices) + 1)]:
        published = max(published, happened)
        before = cursor.last_index
        cursor.connected()
        replayed = nomad.replay(cursor.resume_index, published=published)[:delivered]
        admitted = [index for index in replayed if cursor.admit(index)]
        # Exactly the buffered batches newer than the last one seen, in order, as far as the connection got.
        assert admitted == [index for index in nomad.buffered(published) if index > before][:delivered]
        seen.extend(admitted)

    assert seen == sorted(set(seen))  # strictly increasing: nothing handled twice, nothing out of order
    assert all(index > after_index for index in seen)
    assert cursor.last_index == max(after_index, indices[-1])
