"""The frames body of POST /results, read whole or as it streams in."""

from __future__ import annotations

import struct

import pytest

from sd_common.result_frames import (
    HEADERS_MAX_BYTES,
    FrameError,
    FrameReader,
    FramesTooLarge,
    ResultHeader,
    decode,
    encode,
)

TASKS = [f"{i:032x}" for i in range(4)]
IMAGES = [b"\x89PNG first", b"", b"\x89PNG third" * 1000]
# Images, an empty one among them, and an outcome without image (a failure).
ITEMS = [*zip(TASKS[:3], IMAGES, strict=True), (TASKS[3], b"")]
HEADERS = [ResultHeader(task_id=t, worker="w1", size=len(png)) for t, png in ITEMS[:3]]
HEADERS.append(ResultHeader(task_id=TASKS[3], worker="w1", error="boom"))


def body() -> bytes:
    return encode([(h, png) for h, (_, png) in zip(HEADERS, ITEMS, strict=True)])


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_read_in_chunks_of_any_size_gives_what_was_encoded(chunk: int) -> None:
    data = body()
    reader = FrameReader()
    frames: list[tuple[ResultHeader, bytes]] = []
    joined = b""
    for start in range(0, len(data), chunk):
        for header, piece, ended in reader.feed(data[start : start + chunk]):
            joined += piece
            if ended:
                frames.append((header, joined))
                joined = b""
    reader.close()
    assert [(h.task_id, png) for h, png in frames] == ITEMS
    assert [h.error for h, _ in frames] == [None, None, None, "boom"]
    assert [h.size for h, _ in frames] == [len(IMAGES[0]), 0, len(IMAGES[2]), None]
    assert decode(data) == frames


def test_an_image_comes_out_piece_by_piece_as_its_bytes_arrive() -> None:
    image = HEADERS[2], IMAGES[2]
    data = encode([image])
    reader = FrameReader()
    opening = len(data) - len(IMAGES[2])
    assert reader.feed(data[: opening + 100]) == [(HEADERS[2], IMAGES[2][:100], False)]
    assert reader.feed(data[opening + 100 : -1]) == [(HEADERS[2], IMAGES[2][100:-1], False)]
    assert reader.feed(data[-1:]) == [(HEADERS[2], IMAGES[2][-1:], True)]
    reader.close()


def test_each_result_comes_out_as_soon_as_its_last_byte_arrives() -> None:
    data = body()
    first_ends = len(encode([(HEADERS[0], IMAGES[0])]))
    reader = FrameReader()
    assert all(not ended for _, _, ended in reader.feed(data[: first_ends - 1]))
    ((header, piece, ended),) = reader.feed(data[first_ends - 1 : first_ends])
    assert (header.task_id, piece, ended) == (TASKS[0], IMAGES[0][-1:], True)


def test_headers_past_their_limit_in_one_body_are_refused() -> None:
    big = ResultHeader(task_id=TASKS[0], worker="w1", output="p" * (HEADERS_MAX_BYTES // 2))
    decode(encode([(big, b"")]))
    with pytest.raises(FramesTooLarge, match=r"1\.0 MB"):
        decode(encode([(big, b""), (big, b"")]))


def test_a_result_image_never_comes_with_an_error_or_a_written_result() -> None:
    with pytest.raises(ValueError, match="without error"):
        ResultHeader(task_id=TASKS[0], worker="w1", size=3, error="boom")
    written = f".incoming-{TASKS[0]}-{TASKS[1]}.png"
    with pytest.raises(ValueError, match="without error"):
        ResultHeader(task_id=TASKS[0], worker="w1", size=3, result=written)


def frame(header: bytes) -> bytes:
    return struct.pack(">I", len(header)) + header


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"", "no results"),
        (b"\x00\x00", "truncated frame length"),
        (b"\x00\x00\x00\x00", "bad frame header length"),
        (struct.pack(">I", 5000) + b"{}", "bad frame header length"),
        (frame(b"not json"), "bad frame header"),
        (frame(b'{"task_id": "../x", "worker": "w1", "size": 1}') + b"x", "task_id"),
        (
            frame(b'{"task_id": "%s", "worker": "w1", "size": 9}' % TASKS[0].encode()) + b"short",
            "truncated result",
        ),
    ],
)
def test_a_malformed_body_is_refused_whole_or_streamed(data: bytes, phrase: str) -> None:
    with pytest.raises(FrameError, match=phrase):
        decode(data)
    reader = FrameReader()
    with pytest.raises(FrameError, match=phrase):
        for byte in range(len(data)):
            reader.feed(data[byte : byte + 1])
        reader.close()
