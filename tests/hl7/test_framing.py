"""MLLP framing alone: bytes in, events out (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalbridge.hl7v2.mllp.framing import Frame, FrameDecoder, Garbage, Oversize, encode_frame


def feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[object]:
    events: list[object] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events


def test_one_frame_in_one_read() -> None:
    assert FrameDecoder(100).feed(encode_frame(b"MSH|x")) == [Frame(b"MSH|x")]


def test_frame_split_one_byte_at_a_time() -> None:
    data = encode_frame(b"MSH|^~\\&|A\rPID|1") + encode_frame(b"MSH|second")
    decoder = FrameDecoder(100)
    events = feed_all(decoder, [bytes([b]) for b in data])
    assert events == [Frame(b"MSH|^~\\&|A\rPID|1"), Frame(b"MSH|second")]
    assert not decoder.in_frame


def test_many_frames_in_one_read() -> None:
    payloads = [f"MSH|{i}".encode() for i in range(50)]
    events = FrameDecoder(100).feed(b"".join(encode_frame(p) for p in payloads))
    assert events == [Frame(p) for p in payloads]


def test_garbage_between_frames_is_skipped_and_counted() -> None:
    data = b"noise" + encode_frame(b"A") + b"\r\n\x00\xff" + encode_frame(b"B") + b"tail"
    assert FrameDecoder(100).feed(data) == [Garbage(5), Frame(b"A"), Garbage(4), Frame(b"B"), Garbage(4)]


def test_new_start_block_abandons_an_open_frame() -> None:
    data = b"\x0bhalf a mess" + encode_frame(b"whole")
    assert FrameDecoder(100).feed(data) == [Garbage(12), Frame(b"whole")]


def test_bare_end_block_ends_a_frame_and_a_following_cr_is_not_garbage() -> None:
    decoder = FrameDecoder(100)
    assert decoder.feed(b"\x0bA\x1c") == [Frame(b"A")]
    assert decoder.feed(b"\r\x0bB\x1c\r") == [Frame(b"B")]
    assert decoder.feed(b"\x0bC\x1cX") == [Frame(b"C"), Garbage(1)]


def test_oversize_frame_is_dropped_and_reported_with_its_head() -> None:
    big = b"MSH|head\r" + b"x" * 500
    decoder = FrameDecoder(100)
    events = decoder.feed(encode_frame(big) + encode_frame(b"next"))
    assert events == [Oversize(big[:100], len(big)), Frame(b"next")]


def test_oversize_frame_arriving_in_pieces_keeps_memory_bounded() -> None:
    decoder = FrameDecoder(1000)
    assert decoder.feed(b"\x0b" + b"MSH|" + b"y" * 996) == []
    assert decoder.in_frame
    for _ in range(100):
        assert decoder.feed(b"z" * 10_000) == []
        assert len(decoder._buf) == 0  # dropped, not buffered
    assert decoder.feed(b"\x1c\r") == [Oversize((b"MSH|" + b"y" * 996)[:1000], 1000 + 1_000_000)]


def test_frame_exactly_at_the_limit_is_accepted() -> None:
    payload = b"m" * 64
    assert FrameDecoder(64).feed(encode_frame(payload)) == [Frame(payload)]
    assert FrameDecoder(63).feed(encode_frame(payload)) == [Oversize(payload[:63], 64)]


def test_frames_started_counts_each_frame() -> None:
    decoder = FrameDecoder(100)
    decoder.feed(encode_frame(b"a") + b"\x0bpart")
    assert decoder.frames_started == 2
    assert decoder.in_frame


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FrameDecoder(0)


payload = st.binary(max_size=80).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))
junk = st.binary(max_size=10).map(lambda b: b.replace(b"\x0b", b""))


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(payload, max_size=8), junks=st.lists(junk, min_size=9, max_size=9), cuts=st.data())
def test_any_split_of_a_stream_gives_the_same_frames(
    payloads: list[bytes], junks: list[bytes], cuts: st.DataObject
) -> None:
    stream = b"".join(j + encode_frame(p) for j, p in zip(junks, payloads, strict=False)) + junks[-1]
    points = sorted(cuts.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    events = feed_all(FrameDecoder(50), chunks)
    frames = [e for e in events if not isinstance(e, Garbage)]
    expected = [Frame(p) if len(p) <= 50 else Oversize(p[:50], len(p)) for p in payloads]
    assert frames == expected
    # Every byte is accounted for: frame content, framing, or counted garbage.
    garbage = sum(e.size for e in events if isinstance(e, Garbage))
    assert garbage == sum(len(j) for j in junks[: len(payloads)]) + len(junks[-1])
