"""A zip archive written as it is sent: stored (PNG is compressed already), ZIP64 when it
must be, and its central directory spooled to a temporary file, so memory stays flat however
many files it holds. The standard library's zipfile keeps a ZipInfo per entry in memory
(about 0.5 KB each) and cannot stream a stored entry without a data descriptor."""

from __future__ import annotations

import os
import struct
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

CHUNK = 1024 * 1024
FLUSH_AT = 1024 * 1024
MAX32 = 0xFFFFFFFF
MAX16 = 0xFFFF
UTF8_NAMES = 0x0800


def _dos_time(mtime: float) -> tuple[int, int]:
    t = time.localtime(max(mtime, 315532800))  # zip dates start in 1980
    return (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), (
        ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    )


def _crc_of(path: Path, size: int) -> tuple[int, bytes | None]:
    """The file's CRC-32, and its bytes when it is small enough to keep for the copy."""
    with open(path, "rb") as f:
        if size <= CHUNK:
            data = f.read()
            return zlib.crc32(data), data
        crc = 0
        while block := f.read(CHUNK):
            crc = zlib.crc32(block, crc)
        return crc, None


class ZipStream:
    """Feed it `(path, name)` entries with `entries()`, then send `finish()`'s chunks."""

    def __init__(self) -> None:
        self.offset = 0
        self.count = 0
        self._directory = tempfile.SpooledTemporaryFile(max_size=CHUNK)

    def entries(self, files: Iterable[tuple[Path, str]]) -> Iterator[bytes]:
        """The archive's bytes for these files, in chunks of about FLUSH_AT; files that
        vanished are left out."""
        out = bytearray()
        for path, name in files:
            try:
                for piece in self._entry(path, name):
                    out += piece
                    if len(out) >= FLUSH_AT:
                        yield bytes(out)
                        out.clear()
            except FileNotFoundError:
                continue
        if out:
            yield bytes(out)

    def _entry(self, path: Path, name: str) -> Iterator[bytes]:
        stat = os.stat(path)
        size = stat.st_size
        crc, data = _crc_of(path, size)
        encoded = name.encode()
        clock, day = _dos_time(stat.st_mtime)
        big = size >= MAX32
        extra = struct.pack("<HHQQ", 1, 16, size, size) if big else b""
        header = struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            45 if big else 20,
            UTF8_NAMES,
            0,
            clock,
            day,
            crc,
            MAX32 if big else size,
            MAX32 if big else size,
            len(encoded),
            len(extra),
        )
        start = self.offset
        yield header + encoded + extra
        if data is not None:
            yield data
        else:
            with open(path, "rb") as f:
                while block := f.read(CHUNK):
                    yield block
        self.offset += len(header) + len(encoded) + len(extra) + size
        self._directory_entry(encoded, crc, size, start, clock, day)
        self.count += 1

    def _directory_entry(
        self, encoded: bytes, crc: int, size: int, start: int, clock: int, day: int
    ) -> None:
        wide = [v for v in (size, size, start) if v >= MAX32]
        extra = struct.pack(f"<HH{len(wide)}Q", 1, 8 * len(wide), *wide) if wide else b""
        record = struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            0x0300 | 45,
            45 if wide else 20,
            UTF8_NAMES,
            0,
            clock,
            day,
            crc,
            min(size, MAX32),
            min(size, MAX32),
            len(encoded),
            len(extra),
            0,
            0,
            0,
            0o100644 << 16,
            min(start, MAX32),
        )
        self._directory.write(record + encoded + extra)

    def finish(self) -> Iterator[bytes]:
        """The central directory and the end records."""
        directory = self._directory
        size = directory.tell()
        directory.seek(0)
        with directory:
            while block := directory.read(CHUNK):
                yield block
        start, end = self.offset, self.offset + size
        tail = b""
        if self.count >= MAX16 or start >= MAX32 or size >= MAX32:
            tail += struct.pack(
                "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, self.count, self.count, size, start
            )
            tail += struct.pack("<IIQI", 0x07064B50, 0, end, 1)
        entries = min(self.count, MAX16)
        tail += struct.pack(
            "<IHHHHIIH", 0x06054B50, 0, 0, entries, entries, min(size, MAX32), min(start, MAX32), 0
        )
        yield tail
