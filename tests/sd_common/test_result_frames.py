"""The frames body of POST /result-images, read whole or as it streams in."""

from __future__ import annotations

import struct

import pytest

from sd_common.result_frames import FrameError, FrameReader, ResultHeader, decode, encode

TASKS = [f"{i:032x}" for i in range(3)]
IMAGES = [b"\x89PNG first", b"", b"\x89PNG third" * 1000]


def body() -> bytes:
    return encode([(ResultHeader(task_id=t, worker="w1", size=len(png)), png)
                   for t, png in zip(TASKS, IMAGES, strict=True)])  # fmt: skip


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_read_in_chunks_of_any_size_gives_what_was_encoded(chunk: int) -> None:
    data = body()
    reader = FrameReader()
    got = []
    for start in range(0, len(data), chunk):
        got += reader.feed(data[start : start + chunk])
    reader.close()
    assert [(h.task_id, png) for h, png in got] == list(zip(TASKS, IMAGES, strict=True))
    assert decode(data) == got


def test_each_result_comes_out_as_soon_as_its_last_byte_arrives() -> None:
    data = body()
    first = ResultHeader(task_id=TASKS[0], worker="w1", size=len(IMAGES[0]))
    first_ends = len(encode([(first, IMAGES[0])]))
    reader = FrameReader()
    assert reader.feed(data[: first_ends - 1]) == []
    (header, png), = reader.feed(data[first_ends - 1 : first_ends])
    assert (header.task_id, png) == (TASKS[0], IMAGES[0])


def frame(header: bytes) -> bytes:
    return struct.pack(">I", len(header)) + header


@pytest.mark.parametrize(("data", "phrase"), [
    (b"", "no results"),
    (b"\x00\x00", "truncated frame length"),
    (b"\x00\x00\x00\x00", "bad frame header length"),
    (struct.pack(">I", 5000) + b"{}", "bad frame header length"),
    (frame(b"not json"), "bad frame header"),
    (frame(b'{"task_id": "../x", "worker": "w1", "size": 1}') + b"x", "task_id"),
    (frame(b'{"task_id": "%s", "worker": "w1", "size": 9}' % TASKS[0].encode()) + b"short",
     "truncated result"),
])  # fmt: skip
def test_a_malformed_body_is_refused_whole_or_streamed(data: bytes, phrase: str) -> None:
    with pytest.raises(FrameError, match=phrase):
        decode(data)
    reader = FrameReader()
    with pytest.raises(FrameError, match=phrase):
        for byte in range(len(data)):
            reader.feed(data[byte : byte + 1])
        reader.close()
