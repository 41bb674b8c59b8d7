"""Checks of what a caller passes, made before any request: a wrong value fails here with a
message that says what to give, not later as an error from the server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.images import ImageInput, encode_images
from ..core.wire import OPTION_KINDS
from ..errors import ConfigError, InputError

_OPTION_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "float32": (int, float),
    "boolean": (bool,),
}


def check_text(text: object) -> str:
    """The document as str (UTF-8 bytes are decoded); InputError when it cannot be sent."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"the document is not UTF-8 (byte {exc.start}); decode it before extracting"
            ) from None
    if not isinstance(text, str):
        raise InputError(f"the document must be text, not {type(text).__name__}")
    if not text.strip():
        raise InputError("the document is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"the document holds a character that is not valid Unicode at {exc.start} "
            "(a lone surrogate); decode the source with errors='replace'"
        ) from None
    return text


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Catch wrong option types here: Ollama answers them with a 500 that looks retryable."""
    for key, value in options.items():
        kind = OPTION_KINDS.get(key)
        if kind == "strings":
            if not (isinstance(value, list | tuple) and all(isinstance(s, str) for s in value)):
                raise ConfigError(f"option {key!r} must be a list of strings, not {value!r}")
            continue
        expected = _OPTION_PYTHON_TYPES.get(kind or "")
        wrong_bool = isinstance(value, bool) and kind != "boolean"
        if expected and (wrong_bool or not isinstance(value, expected)):
            names = " or ".join(t.__name__ for t in expected)
            raise ConfigError(f"option {key!r} must be {names}, not {value!r}")
    return dict(options)


def check_keep_alive(value: float | str) -> float | str:
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        raise ConfigError(
            f"keep_alive={value!r}: a string needs a unit ('{value}s', '5m'); or pass a number"
        )
    return value


def _images(value: Sequence[ImageInput]) -> list[str] | None:
    return encode_images(value) if value else None


# How a given field's value is checked or converted before it goes into the request.
GIVEN_CHECKS: dict[str, Any] = {
    "keep_alive": check_keep_alive,
    "context": list,
    "images": _images,
}
