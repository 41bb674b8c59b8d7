"""Images for vision models: bytes, file paths or base64 text, all sent as plain base64."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError

ImageInput = bytes | str | os.PathLike[str]

# Ollama wants the bare base64 of the bytes; a browser-style data URL prefix is stripped.
_DATA_URL_MARK = ";base64,"


def encode_images(images: Sequence[ImageInput]) -> list[str]:
    """Each image as plain base64.

    >>> encode_images([b"\\x89PNG", "data:image/png;base64,iVBORw=="])
    ['iVBORw==', 'iVBORw==']

    Raises InputError for a path that does not exist or text that is neither a path nor base64.
    """
    if isinstance(images, str | bytes):
        raise InputError("images must be a list (of bytes, paths or base64 strings)")
    return [_encode_one(image, i) for i, image in enumerate(images)]


def _encode_one(image: ImageInput, index: int) -> str:
    if isinstance(image, bytes | bytearray):
        if not image:
            raise InputError(f"images[{index}] is empty", field="images")
        return base64.b64encode(image).decode("ascii")
    if isinstance(image, os.PathLike):
        return _read(Path(image), index)
    if not isinstance(image, str):
        raise InputError(
            f"images[{index}] is a {type(image).__name__}; give bytes, a path or base64 text",
            field="images",
        )
    text = image.strip()
    if text.startswith("data:") and _DATA_URL_MARK in text:
        text = text.partition(_DATA_URL_MARK)[2]
    # A short string that names an existing file is a path; base64 of real images is long.
    if len(text) < 4096 and "\n" not in text and Path(text).is_file():
        return _read(Path(text), index)
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(
            f"images[{index}] is neither an existing file nor base64 text", field="images"
        ) from None
    if not text:
        raise InputError(f"images[{index}] is empty", field="images")
    return text


def _read(path: Path, index: int) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"images[{index}]: cannot read {path}: {exc.strerror}", field="images"
        ) from None
    if not data:
        raise InputError(f"images[{index}]: {path} is empty", field="images")
    return base64.b64encode(data).decode("ascii")
