"""Read a few metadata keys from a GGUF file's header, without llama.cpp.

/api/tags describes every model before any is loaded, and loading is what llama.cpp is for.
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from pathlib import Path
from typing import Any, BinaryIO

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9

# llama.cpp's llama_ftype values for the common quantizations.
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands."""


def read_metadata(path: Path, wanted: Collection[str]) -> dict[str, Any]:
    """The ``wanted`` keys found in the GGUF header of ``path`` (arrays are skipped).

    Reading stops once every wanted key is found.

    Raises:
        GGUFError: not a GGUF v2/v3 file.
        OSError: the file cannot be read.
    """
    found: dict[str, Any] = {}
    with path.open("rb") as f:
        magic, version = f.read(4), _read(f, "<I")
        if magic != b"GGUF" or version < 2:
            raise GGUFError(f"{path} is not a GGUF v2+ file")
        _read(f, "<Q")  # tensor count
        for _ in range(_read(f, "<Q")):
            key = _read_string(f)
            kind = _read(f, "<I")
            if kind == _ARRAY:
                _skip_array(f)
                continue
            value = _read_value(f, kind)
            if key in wanted:
                found[key] = value
                if len(found) == len(wanted):
                    break
    return found


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise GGUFError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _read_string(f: BinaryIO) -> str:
    return f.read(_read(f, "<Q")).decode("utf-8", errors="replace")


def _read_value(f: BinaryIO, kind: int) -> Any:
    if kind == _STRING:
        return _read_string(f)
    if kind not in _SCALARS:
        raise GGUFError(f"unknown GGUF value type {kind}")
    return _read(f, _SCALARS[kind])


def _skip_array(f: BinaryIO) -> None:
    kind, count = _read(f, "<I"), _read(f, "<Q")
    if kind == _STRING:
        for _ in range(count):
            f.seek(_read(f, "<Q"), 1)
    elif kind in _SCALARS:
        f.seek(struct.calcsize(_SCALARS[kind]) * count, 1)
    else:
        for _ in range(count):
            _skip_array(f) if kind == _ARRAY else _read_value(f, kind)
