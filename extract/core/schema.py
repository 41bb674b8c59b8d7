"""Schemas: what a reply must look like, from a Pydantic model, a dict, a file or a bundled name.

A :class:`Schema` is checked once, when it is loaded, and then serves three purposes:

- the prompt shows the model its :meth:`~Schema.render`-ing (an example of the output shape);
- Ollama's ``format`` gets its :attr:`~Schema.grammar` form, the subset llama.cpp can enforce;
- every reply is checked by :meth:`~Schema.validate` against the **original** schema (and the
  Pydantic model when there is one), since the grammar is a helper, not a proof.

The root need not be an object schema: ``{"type": "string", "enum": [...]}`` makes each reply a
bare JSON string, and ``true`` (any JSON value) and ``false`` (none) are schemas too.

What loads is what ``jsonschema`` takes: the schema passes its draft's metaschema (2020-12 when
it declares none), and a subschema may declare another draft (mixed drafts). Two refusals are
extract's own: a ``$schema`` naming no known draft (``jsonschema`` falls back to the latest
draft with a warning that this will become an error) and draft 3; and a ``$ref`` to another
document, since nothing here touches the network (the metaschemas, which ``jsonschema`` ships,
are the exception). Every refusal is a SchemaError naming the JSON path and the rule.

The ``format`` keyword is checked for the formats in :data:`CHECKED_FORMATS`, the same on every
install (see ``extract/_formats.py``); any other format is an annotation and is not checked.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable
from referencing.jsonschema import UnknownDialect, specification_with

from ..errors import ConfigError, SchemaError, SchemaMismatch
from .formats import CHECKED_FORMATS, FORMAT_CHECKER
from .grounding import Span, ground, grounded_paths, sentence_paths
from .schema_grammar import grammar_form
from .schema_render import COMPACT_DEPTHS, STYLES, Style, check_labels, placeholders, render
from .schema_walk import Parts, SchemaIndex, json_path

__all__ = ["CHECKED_FORMATS", "Schema", "bundled_schemas"]

DEFAULT_DIALECT = "https://json-schema.org/draft/2020-12/schema"
MAX_MESSAGE = 300  # characters of a validation message (they quote the offending value)
CACHE_SIZE = 64  # schemas loaded from dicts and models, kept ready
COMPACT_LEVELS = len(COMPACT_DEPTHS)  # compact renderings, each smaller than the last
_BUNDLED_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def _bundled_dirs() -> list[Path]:
    package = Path(__file__).resolve().parent.parent
    # Wheels carry the schemas inside the package; an editable install reads the repository's.
    return [d for d in (package / "_schemas", package.parent / "schemas") if d.is_dir()]


def _bundled_path(name: str) -> Path | None:
    if len(name) > 100 or not _BUNDLED_NAME.fullmatch(name):
        return None
    return next(
        (d / f"{name}.json" for d in _bundled_dirs() if (d / f"{name}.json").is_file()), None
    )


def bundled_schemas() -> dict[str, str]:
    """The schemas shipped with extract: name → one-line description, sorted by name."""
    found: dict[str, str] = {}
    for directory in reversed(_bundled_dirs()):
        for path in directory.glob("*.json"):
            try:
                description = json.loads(path.read_text(encoding="utf-8")).get("description")
            except (OSError, ValueError, AttributeError):
                continue  # not a schema file; loading it by name would say why
            found[path.stem] = description.strip() if isinstance(description, str) else ""
    return dict(sorted(found.items()))


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _dumps(value: Any) -> str:
    """``value`` as JSON text (key order kept); raises SchemaError when it is not plain JSON."""

    def plain(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            return dict(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON")

    try:
        return json.dumps(value, default=plain, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"the schema is not plain JSON: {exc}") from None
    except RecursionError:
        raise SchemaError("the schema is nested too deeply") from None


# The extractor loads the schema on every call: checking a schema costs milliseconds, so the
# last few are kept (keyed by their JSON text, or by the model class).
@functools.lru_cache(maxsize=CACHE_SIZE)
def _from_json(text: str) -> Schema:
    return Schema(_parse(text, "the schema"))


@functools.lru_cache(maxsize=CACHE_SIZE)
def _from_model(model: type[pydantic.BaseModel]) -> Schema:
    try:
        generated = model.model_json_schema()
    except pydantic.PydanticUserError as exc:
        raise SchemaError(f"{model.__name__} has no JSON Schema: {exc}") from None
    return Schema(generated, model=model)


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SchemaError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise SchemaError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _parse(text, str(path))


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise SchemaError(f"{where} is nested too deeply") from None


def _validator_class(schema: Mapping[str, Any]) -> type[Validator]:
    dialect = schema.get("$schema", DEFAULT_DIALECT)
    if not isinstance(dialect, str):
        raise SchemaError("$schema must be a URI string", path="$.$schema")
    try:
        specification_with(dialect)
    except UnknownDialect:
        raise SchemaError(
            f"unknown $schema {dialect!r}; use a JSON Schema draft URI such as {DEFAULT_DIALECT!r}",
            path="$.$schema",
        ) from None
    cls: type[Validator] = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator
    )
    if cls is jsonschema.Draft3Validator:
        raise SchemaError(
            "draft 3 schemas are not supported; use draft 4 or later", path="$.$schema"
        )
    return cls


class Schema:
    """A JSON Schema, checked against its metaschema once, ready to prompt, constrain and validate.

    Build one with :meth:`load`. Attributes:

    - ``json_schema``: the original schema (a private deep copy); replies are validated against it.
    - ``model``: the Pydantic model it came from, or None.
    - ``name``: the bundled name, else the schema's ``title`` (or the file's stem).
    - ``description``: the schema's ``description``, if any.
    - ``fingerprint``: sha256 hex of the canonical JSON of ``json_schema``, for cache keys.
    - ``grammar``: the grammar-safe form for Ollama's ``format``, or None when none exists.

    Loading the same dict or model again returns the same instance: treat it as read-only.
    """

    json_schema: dict[str, Any]
    model: type[pydantic.BaseModel] | None
    name: str | None
    description: str | None
    fingerprint: str
    grammar: dict[str, Any] | None

    def __init__(
        self,
        json_schema: Mapping[str, Any],
        *,
        model: type[pydantic.BaseModel] | None = None,
        name: str | None = None,
    ) -> None:
        """Check ``json_schema`` and prepare it; raises SchemaError naming the bad keyword."""
        schema = _parse(_dumps(json_schema), "the schema")  # a private, plain-JSON deep copy
        if not isinstance(schema, dict):
            raise SchemaError("a schema must be a JSON object")
        try:
            cls = _validator_class(schema)
            # As jsonschema's check_schema does: the metaschema's own formats (a pattern must
            # be a regex Python compiles), checked as jsonschema checks them.
            meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)
            error = best_match(meta.iter_errors(schema))
            if error is not None:
                raise SchemaError(
                    f"not a valid JSON Schema: {_short(error.message)} (the metaschema's"
                    f" {error.validator!r} rule)",
                    path=json_path(tuple(error.absolute_path)),
                )
            self._index = SchemaIndex(schema, schema.get("$schema", DEFAULT_DIALECT))
            check_labels(self._index)
            self.grammar, self._notes = grammar_form(self._index)
        except RecursionError:
            raise SchemaError("the schema is nested too deeply") from None
        self._validator = cls(schema, registry=self._index.registry, format_checker=FORMAT_CHECKER)
        self.json_schema = schema
        self.model = model
        title, description = schema.get("title"), schema.get("description")
        self.name = name or (title if isinstance(title, str) else None)
        if self.name is None and model is not None:
            self.name = model.__name__
        self.description = description if isinstance(description, str) else None
        canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        self.fingerprint = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        self._renderings: dict[tuple[str, int], str] = {}
        # Where the values to find in the document are (``x-grounded``): see core.grounding.
        self.grounded = grounded_paths(self._index)
        # Those that are whole sentences of the document, offered as choices (core.sentences).
        self.sentences = sentence_paths(self._index) if self.grounded else ()

    @classmethod
    def load(
        cls,
        source: type[pydantic.BaseModel]
        | Mapping[str, Any]
        | bool
        | str
        | os.PathLike[str]
        | Schema,
    ) -> Schema:
        """A Schema from a Pydantic model class, a dict, a boolean, a bundled name, a path or
        JSON text.

        A string is a bundled name when ``schemas/<name>.json`` exists (see
        :func:`bundled_schemas`), JSON text when it starts with ``{``, else a file path.
        ``True`` accepts any JSON value and ``False`` none, as in JSON Schema.
        Raises SchemaError for an unknown name, a missing or unreadable file, invalid JSON (with
        line and column), a schema that breaks its metaschema (with the keyword's JSON path), or
        a ``$ref`` that does not resolve inside the schema (naming it).
        """
        if isinstance(source, Schema):
            return source
        if isinstance(source, bool):  # JSON Schema's boolean schemas, as the keyword forms
            return _from_json(_dumps({} if source else {"not": {}}))
        if isinstance(source, type) and issubclass(source, pydantic.BaseModel):
            return _from_model(source)
        if isinstance(source, Mapping):
            return _from_json(_dumps(source))
        if isinstance(source, str) and source.lstrip().startswith("{"):
            return cls(_parse(source, "the schema text"))
        if isinstance(source, str | os.PathLike):
            return cls._from_file(os.fspath(source))
        raise SchemaError(
            f"cannot make a schema from {type(source).__name__}; pass a Pydantic model class,"
            " a dict, a bundled schema name or a path to a .json file"
        )

    @classmethod
    def _from_file(cls, source: str) -> Schema:
        bundled = _bundled_path(source)
        if bundled is not None:
            return cls(_checked_root(_read(bundled)), name=source)
        path = Path(source)
        try:
            is_file = path.is_file()
        except (OSError, ValueError):  # a name too long for the OS, or with a NUL byte
            is_file = False
        if not is_file:
            names = ", ".join(bundled_schemas()) or "none"
            what = "unknown schema name" if _BUNDLED_NAME.fullmatch(source) else "no schema file at"
            shown = source if len(source) <= 200 else source[:200] + "..."
            raise SchemaError(f"{what} {shown!r}; bundled schemas: {names}")
        data = _checked_root(_read(path))
        title = data.get("title")
        return cls(data, name=title if isinstance(title, str) else path.stem)

    def validate(self, value: Any) -> Any:
        """Check a decoded reply; returns the model instance when there is a model, else ``value``.

        Raises SchemaMismatch with the single most useful error and its JSON path
        (e.g. ``$.items[2].price``), from the JSON Schema first, then from the Pydantic model.
        With a model, the model decides: a reply it accepts is returned even where a ``format``
        in its JSON Schema would reject it (pydantic's ``datetime`` takes a time without an
        offset, its ``AnyUrl`` a space, which it escapes).
        """
        if self.model is None:
            self._check_json_schema(value)
            return value
        try:
            # JSON mode: the value came from JSON, so e.g. dates arrive as strings. The model is
            # the fast check (and the authority); the JSON Schema explains a failure best.
            return self.model.model_validate_json(json.dumps(value))
        except (TypeError, ValueError) as exc:
            self._check_json_schema(value)
            if not isinstance(exc, pydantic.ValidationError) or not exc.errors():
                raise SchemaMismatch(_short(f"not a JSON value: {exc}")) from None
            first = exc.errors(include_url=False)[0]
            loc = tuple(p for p in first["loc"] if isinstance(p, str | int))
            raise SchemaMismatch(_short(first["msg"]), path=json_path(loc)) from None

    def _check_json_schema(self, value: Any) -> None:
        try:
            error = best_match(self._validator.iter_errors(value))
        except RecursionError:
            raise SchemaMismatch("the value is nested too deeply to validate") from None
        except Unresolvable as exc:  # jsonschema wraps it; a reference only some values reach
            ref = getattr(getattr(exc, "_wrapped", exc), "ref", "")
            raise SchemaError(
                f"$ref {ref!r} does not resolve where this value reaches it (remote references"
                " are never fetched; inline it under $defs)"
            ) from None
        if error is not None:
            raise SchemaMismatch(_short(error.message), path=json_path(tuple(error.absolute_path)))

    def ground(self, value: Any, document: str) -> tuple[list[Span], list[Parts]]:
        """Where the grounded values of ``value`` occur in ``document``, and those that do not.

        ``value`` is JSON data or a model instance; see ``core.grounding`` for the matching.
        """
        dump = getattr(value, "model_dump", None)
        return ground(dump(mode="json") if callable(dump) else value, self.grounded, document)

    def render(self, style: Style = "shape", compact: int = 0) -> str:
        """The schema as shown to the model: ``"shape"`` (an example of the output, the
        default) or ``"schema"`` (the compact JSON Schema); ``compact`` 1 to
        ``COMPACT_LEVELS`` for smaller renderings that say what they leave out (see
        ``schema_render``). Raises ConfigError for other styles or levels."""
        if style not in STYLES:
            raise ConfigError(f"unknown rendering style {style!r}; use one of {', '.join(STYLES)}")
        if compact not in range(COMPACT_LEVELS + 1):
            raise ConfigError(f"compact={compact!r}: use 0 to {COMPACT_LEVELS}")
        if (style, compact) not in self._renderings:
            self._renderings[style, compact] = render(self._index, style, compact)
        return self._renderings[style, compact]

    @functools.cached_property
    def has_choices(self) -> bool:
        """Whether any value is a choice among options (enum, const, boolean): the fields
        whose confidence log-probabilities can give."""
        for node, _, _ in self._index.walk(self._index.root, (), None):
            kinds = node.get("type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if "enum" in node or "const" in node or "boolean" in kinds:
                return True
        return False

    @functools.cached_property
    def placeholders(self) -> frozenset[str]:
        """The ``<...>`` placeholders of the shape rendering: a reply that repeats one copied
        the shape instead of reading the document (see ``schema_render.echoed_placeholder``)."""
        return placeholders(self._index)

    @property
    def index(self) -> SchemaIndex:
        """The checked schema document: subschema locations and local ``$ref`` lookup."""
        return self._index

    def unenforced(self) -> list[str]:
        """What Ollama's grammar will not enforce, one ``"<JSON path>: <what>"`` line each.

        Validation still checks all of it; these are the places a reply can fail and be re-asked.
        """
        return list(self._notes)

    def __reduce__(self) -> tuple[Any, ...]:
        # The prepared validator and registry hold closures that do not pickle (Ray ships
        # schemas to its workers): rebuild them from the schema on the other side.
        return (_rebuild, (self.json_schema, self.model, self.name))

    def __repr__(self) -> str:
        return f"Schema(name={self.name!r}, fingerprint={self.fingerprint[:12]!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schema):
            return NotImplemented
        return self.fingerprint == other.fingerprint and self.model is other.model

    def __hash__(self) -> int:
        return hash((self.fingerprint, self.model))


def _rebuild(
    json_schema: dict[str, Any], model: type[pydantic.BaseModel] | None, name: str | None
) -> Schema:
    return Schema(json_schema, model=model, name=name)


def _checked_root(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SchemaError("a schema file must hold a JSON object")
    return data
