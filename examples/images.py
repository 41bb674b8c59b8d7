"""Images for a vision model: pass bytes, file paths or base64 text.

    ollama pull llava && python examples/images.py receipt.png
Without a path, a tiny generated PNG stands in (a real receipt photo gives real answers).
"""

import os
import struct
import sys
import zlib

from pydantic import BaseModel

from extract import Extractor


class Receipt(BaseModel):
    shop: str
    total: float


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


image = sys.argv[1] if len(sys.argv) > 1 else tiny_png()

with Extractor(os.environ.get("EXTRACT_MODEL", "llava")) as ex:
    result = ex.extract(
        "Read the shop name and the total from this receipt.", schema=Receipt, images=[image]
    )
    print(repr(result.value))
