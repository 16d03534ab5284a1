#!/usr/bin/env python3
"""Draws the app's home-screen icons: the character 工 (work) in white on the
app's blue, inside the safe zone of a maskable icon. Standard library only;
rerun to regenerate icon-192.png and icon-512.png."""
import struct
import zlib
from pathlib import Path

BLUE = (0x1D, 0x5C, 0x8C)
WHITE = (0xFF, 0xFF, 0xFF)


def pixel(x, y):
    # 工: a top bar, a stem and a wider bottom bar, in unit coordinates.
    bars = [
        (0.30, 0.30, 0.70, 0.38),
        (0.46, 0.30, 0.54, 0.70),
        (0.24, 0.62, 0.76, 0.70),
    ]
    for left, top, right, bottom in bars:
        if left <= x <= right and top <= y <= bottom:
            return WHITE
    return BLUE


def png(size):
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # no filter
        for x in range(size):
            rows.extend(pixel((x + 0.5) / size, (y + 0.5) / size))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


here = Path(__file__).resolve().parent
for size in (192, 512):
    (here / f"icon-{size}.png").write_bytes(png(size))
