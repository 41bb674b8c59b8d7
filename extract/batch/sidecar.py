"""The schema a run used, kept beside its output: ``labels.jsonl`` → ``labels.jsonl.schema.json``.

``extract label`` writes it when a run starts (replacing the last run's), so that whoever reads
the output later (``extract eval``, ``evaluate()``) knows each field's kind (an enum is a choice
field with a confusion matrix, not a free string) without being told again, while the output
keeps exactly one line per input line. The file is a JSON object:

- ``schema``: the JSON Schema the values were validated against;
- ``name``: the schema's name (a bundled name, its title or its file's stem), or null;
- ``model``: the model that labeled, or null;
- ``extract``: the version of extract that wrote it.

Any JSON Schema reader can use ``schema``; ``Schema.load`` takes it as it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._version import __version__
from ..core.schema import Schema
from ..errors import ConfigError, InputError

SUFFIX = ".schema.json"


def sidecar_path(output: str | os.PathLike[str]) -> Path:
    """Where the schema of the run writing ``output`` is kept.

    >>> sidecar_path("runs/labels.jsonl").as_posix()
    'runs/labels.jsonl.schema.json'
    """
    path = Path(output)
    return path.with_name(path.name + SUFFIX)


def write_sidecar(output: str | os.PathLike[str], schema: Schema, model: str | None) -> Path:
    """Write ``schema`` (and the model) beside ``output``; returns the sidecar's path.

    Written to a temporary file and renamed over the old one, so a crash leaves one or the
    other. Raises ConfigError when the file cannot be written.
    """
    path = sidecar_path(output)
    data: dict[str, Any] = {
        "schema": schema.json_schema,
        "name": schema.name,
        "model": model,
        "extract": __version__,
    }
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", "utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def read_sidecar(output: str | os.PathLike[str]) -> Schema | None:
    """The schema kept beside ``output``; None when there is no sidecar.

    Raises InputError when the sidecar is there but unreadable or holds no schema, and
    SchemaError when its schema is not a valid JSON Schema.
    """
    path = sidecar_path(output)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"{path} is not readable JSON ({exc}); remove it and pass --schema"
        ) from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if not isinstance(schema, dict):
        raise InputError(f"{path} holds no 'schema' object; remove it and pass --schema")
    name = data.get("name")
    return Schema(schema, name=name if isinstance(name, str) else None)
