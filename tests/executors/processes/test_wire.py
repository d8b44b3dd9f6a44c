"""The wire: frames survive any split of the byte stream, and writes and reads are batched."""

from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgrunner.executors.processes.wire import (
    DONE,
    HEADER,
    HEARTBEAT,
    KINDS,
    RUN,
    FrameReader,
    FrameWriter,
    WireError,
    encode,
    read_frames,
)

frames_st = st.lists(
    st.tuples(
        st.sampled_from(sorted(KINDS)),
        st.integers(0, 2**64 - 1),
        st.binary(max_size=300),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(frames_st, st.lists(st.integers(0, 10_000), max_size=20))
def test_any_split_of_the_stream_decodes_to_the_same_frames(
    frames: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode(*f) for f in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    reader = FrameReader()
    got = [frame for chunk in chunks for frame in reader.feed(chunk)]
    assert got == frames
    assert reader.pending == 0


@settings(max_examples=100, deadline=None)
@given(frames_st)
def test_byte_by_byte_feeding_decodes_every_frame(frames: list[tuple[int, int, bytes]]) -> None:
    stream = b"".join(encode(*f) for f in frames)
    reader = FrameReader()
    got = [frame for i in range(len(stream)) for frame in reader.feed(stream[i : i + 1])]
    assert got == frames


def test_a_partial_frame_waits_for_the_rest() -> None:
    reader = FrameReader()
    frame = encode(RUN, 7, b'{"update_id":1}')
    assert reader.feed(frame[:5]) == []
    assert reader.feed(frame[5:-1]) == []
    assert reader.pending == len(frame) - 1
    assert reader.feed(frame[-1:]) == [(RUN, 7, b'{"update_id":1}')]


@pytest.mark.parametrize(
    "header",
    [HEADER.pack(0, 99, 1), HEADER.pack(2**31, RUN, 1)],
    ids=["unknown kind", "impossible length"],
)
def test_a_corrupt_stream_is_refused(header: bytes) -> None:
    with pytest.raises(WireError, match="bad frame header"):
        FrameReader(max_payload=1 << 20).feed(header)


async def test_frames_sent_in_one_loop_turn_take_one_write_and_one_read() -> None:
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    loop = asyncio.get_running_loop()
    writer = FrameWriter(loop, w)
    try:
        for token in range(1, 201):
            writer.send(DONE, token)
        writer.send(HEARTBEAT)
        assert writer.buffered == 201 * HEADER.size  # nothing written yet
        await asyncio.sleep(0)  # one turn: the flush runs
        assert writer.buffered == 0
        frames, eof = read_frames(FrameReader(), r)
        assert [t for _, t, _ in frames] == [*range(1, 201), 0]
        assert not eof
    finally:
        writer.close()
        os.close(r)


async def test_a_full_pipe_is_written_when_it_drains() -> None:
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    loop = asyncio.get_running_loop()
    writer = FrameWriter(loop, w)
    payload = os.urandom(64 * 1024)
    reader = FrameReader()
    got: list[bytes] = []
    try:
        for token in range(40):  # 2.5 MiB: more than any pipe holds
            writer.send(RUN, token, payload)
        async with asyncio.timeout(10):
            while len(got) < 40:
                await asyncio.sleep(0)
                frames, _ = read_frames(reader, r)
                got.extend(p for _, _, p in frames)
        assert got == [payload] * 40
        assert writer.buffered == 0
    finally:
        writer.close()
        os.close(r)


async def test_a_closed_reader_breaks_the_writer_once() -> None:
    r, w = os.pipe()
    os.set_blocking(w, False)
    os.close(r)
    broken: list[None] = []
    writer = FrameWriter(asyncio.get_running_loop(), w, on_broken=lambda: broken.append(None))
    writer.send(HEARTBEAT)
    await asyncio.sleep(0)
    writer.send(HEARTBEAT)  # dropped
    await asyncio.sleep(0)
    assert broken == [None]
    writer.close()
    writer.close()  # safe twice


def test_eof_is_reported() -> None:
    r, w = os.pipe()
    os.write(w, encode(HEARTBEAT))
    os.close(w)
    reader = FrameReader()
    assert read_frames(reader, r) == ([(HEARTBEAT, 0, b"")], False)
    assert read_frames(reader, r) == ([], True)
    os.close(r)
