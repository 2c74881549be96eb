"""Decompression bombs, built quickly at test time (never committed).

The deflate stream is one compressed block of repeated JSON lines, ended by a full flush
so that it can be repeated as is: N copies decompress to N blocks without compressing
N blocks. gzip and zip containers are written by hand around it (no zip64: keep the
expanded size under 4 GiB). `declared_size` lets a zip lie about its expanded size.
"""

from __future__ import annotations

import bz2
import io
import struct
import tarfile
import zlib
from pathlib import Path

LINE = (
    b'{"user_id": "bomb", "event_type": "boom", "timestamp": 1717180000000, '
    b'"pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}\n'
)
BLOCK = LINE * ((1 << 20) // len(LINE))  # whole lines, just under 1 MiB


def _deflate(expanded: int) -> tuple[bytes, int, int]:
    """(raw deflate data, crc32, size) of about `expanded` bytes of repeated LINE."""
    copies = max(1, expanded // len(BLOCK))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = compressor.compress(BLOCK) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(copies):
        crc = zlib.crc32(BLOCK, crc)
    return piece * copies + b"\x03\x00", crc, copies * len(BLOCK)


def gzip_bomb(path: Path, expanded: int) -> int:
    """Writes a .gz of ~`expanded` bytes; returns the exact expanded size."""
    data, crc, size = _deflate(expanded)
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"
    path.write_bytes(header + data + struct.pack("<II", crc, size & 0xFFFFFFFF))
    return size


def zip_bomb(
    path: Path, expanded: int, *, name: str = "bomb.jsonl", declared_size: int | None = None
) -> int:
    """Writes a one-member .zip of ~`expanded` bytes; returns the exact expanded size."""
    data, crc, size = _deflate(expanded)
    if size >= 1 << 32:
        raise ValueError("keep zip bombs under 4 GiB (no zip64 here)")
    usize = size if declared_size is None else declared_size
    encoded = name.encode()
    local = struct.pack(
        "<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(data), usize, len(encoded), 0
    )
    central = struct.pack(
        "<4s6H3I5H2I",
        b"PK\x01\x02",
        0x031E,  # made by Unix, version 3.0
        20,
        0,
        8,
        0,
        0x21,
        crc,
        len(data),
        usize,
        len(encoded),
        0,
        0,
        0,
        0,
        0o100644 << 16,
        0,
    )
    body = local + encoded + data
    directory = central + encoded
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(directory), len(body), 0)
    path.write_bytes(body + directory + end)
    return size


def bz2_bomb(path: Path, expanded: int) -> int:
    compressor = bz2.BZ2Compressor(9)
    parts = [compressor.compress(BLOCK) for _ in range(max(1, expanded // len(BLOCK)))]
    parts.append(compressor.flush())
    path.write_bytes(b"".join(parts))
    return max(1, expanded // len(BLOCK)) * len(BLOCK)


class _Repeat(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left, len(BLOCK))
        buffer[:n] = BLOCK[:n]
        self.left -= n
        return n


def tar_gz_bomb(path: Path, expanded: int, *, name: str = "bomb.jsonl") -> None:
    """A .tar.gz with one member of `expanded` bytes of repeated lines."""
    with tarfile.open(path, "w:gz", compresslevel=9) as archive:
        info = tarfile.TarInfo(name)
        info.size = expanded
        archive.addfile(info, io.BufferedReader(_Repeat(expanded)))
