"""Walking a JSON Schema: where each subschema lives, and what each local ``$ref`` points to.

Shared by the metaschema check, the grammar converter and the prompt rendering, so that all
three agree on scopes (``$id``) and on what a reference means. Nothing here ever fetches a
remote document: the registry knows this one document and the JSON Schema metaschemas that
``jsonschema`` ships, so any other ``$ref`` must point inside the schema.

A subschema may declare its own ``$schema`` (mixed drafts), as ``jsonschema`` allows: its
identifiers (``id`` before draft 6, ``$id`` since) are read as that draft reads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import referencing
import referencing.jsonschema
from jsonschema_specifications import REGISTRY as METASCHEMAS  # type: ignore[import-untyped]
from referencing.exceptions import PointerToNowhere, Unresolvable

from ..errors import SchemaError

if TYPE_CHECKING:
    from referencing._core import Resolver  # the package does not re-export the class

    Scope = Resolver[Any]

Parts = tuple[str | int, ...]

# Keywords whose value is one subschema, a list of them, or a name → subschema map.
_ONE = (
    "additionalProperties",
    "additionalItems",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "contentSchema",
    "items",
)
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_MAP = (
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
    "dependencies",
)
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def json_path(parts: Parts) -> str:
    """Format a location as a JSON path.

    >>> json_path(("items", 2, "price"))
    '$.items[2].price'
    >>> json_path(("properties", "first name"))
    "$.properties['first name']"
    >>> json_path(())
    '$'
    """
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENTIFIER.fullmatch(part):
            out.append(f".{part}")
        else:
            escaped = part.replace("\\", "\\\\").replace("'", "\\'")
            out.append(f"['{escaped}']")
    return "".join(out)


class SchemaIndex:
    """A checked schema document: every subschema's location, and local reference lookup.

    Construction walks the whole document once and resolves every reference, so a schema
    that points outside itself (or at nothing) fails here, before any model is asked.
    """

    def __init__(self, root: Mapping[str, Any], dialect: str) -> None:
        self.root = root
        self.specification = referencing.jsonschema.specification_with(
            dialect, default=referencing.jsonschema.DRAFT202012
        )
        resource = self.specification.create_resource(root)
        try:
            # The metaschemas come with jsonschema; any other URI it was not given is
            # unresolvable (this registry retrieves nothing).
            self.registry = METASCHEMAS.with_resource(resource.id() or "", resource).crawl()
        except (TypeError, AttributeError, ValueError) as exc:
            # referencing reads ids as strings: a draft-4 ``id`` holding a number fails here.
            raise SchemaError(f"an identifier (id or $id) is not a URI string: {exc}") from None
        self.resolver = self.registry.resolver(base_uri=resource.id() or "")
        self._locations: dict[int, Parts] = {}
        for node, parts, resolver in self.walk(root, (), self.resolver):
            self._locations[id(node)] = parts
            for keyword in _REF_KEYWORDS:
                ref = node.get(keyword)
                if isinstance(ref, str) and resolver is not None:
                    self._check(ref, resolver, (*parts, keyword))

    def _check(self, ref: str, resolver: Scope, parts: Parts) -> None:
        try:
            resolver.lookup(ref)
        except (PointerToNowhere, ValueError):  # ValueError: a non-number step into an array
            raise SchemaError(
                f"$ref {ref!r} points to nothing in this schema", path=json_path(parts)
            ) from None
        except Unresolvable:
            raise SchemaError(
                f"$ref {ref!r} is not part of this schema (remote references are never fetched;"
                " inline it under $defs)",
                path=json_path(parts),
            ) from None

    def walk(
        self, node: Any, parts: Parts, resolver: Scope | None
    ) -> Iterator[tuple[Mapping[str, Any], Parts, Scope | None]]:
        """Every object subschema under ``node`` with its location and scope, parents first.

        Without a starting ``resolver`` no scopes are tracked (every scope is None).
        """
        if not isinstance(node, Mapping):
            return
        if resolver is not None:
            resolver = self.enter(node, resolver)
        yield node, parts, resolver
        for keyword in _ONE:
            if isinstance(node.get(keyword), Mapping):
                yield from self.walk(node[keyword], (*parts, keyword), resolver)
        for keyword in _MANY:
            if isinstance(node.get(keyword), list):
                for i, sub in enumerate(node[keyword]):
                    yield from self.walk(sub, (*parts, keyword, i), resolver)
        for keyword in _MAP:
            if isinstance(node.get(keyword), Mapping):
                for name, sub in node[keyword].items():
                    yield from self.walk(sub, (*parts, keyword, name), resolver)

    def without(self, keywords: tuple[str, ...], *, extensions: bool = False) -> Any:
        """A copy of the schema with ``keywords`` (and with ``extensions``, every ``x-...``
        keyword) removed from every subschema; a property bearing such a name is kept."""
        subschemas = {id(node) for node, _, _ in self.walk(self.root, (), None)}

        def dropped(key: str) -> bool:
            return key in keywords or (extensions and key.startswith("x-"))

        def copy(value: Any) -> Any:
            if isinstance(value, Mapping):
                here = id(value) in subschemas
                return {k: copy(v) for k, v in value.items() if not (here and dropped(k))}
            if isinstance(value, list):
                return [copy(v) for v in value]
            return value

        return copy(self.root)

    def enter(self, node: Mapping[str, Any], resolver: Scope) -> Scope:
        """The scope inside ``node``: a new base URI when it declares an ``$id``.

        Call it once per node reached by walking down; a node reached through
        :meth:`resolve` comes with its scope already entered.
        """
        specification = self.specification
        dialect = node.get("$schema")
        if isinstance(dialect, str):  # a subschema of another draft reads its own id keyword
            specification = referencing.jsonschema.specification_with(
                dialect, default=specification
            )
        if isinstance(specification.id_of(node), str):
            return resolver.in_subresource(specification.create_resource(node))
        return resolver

    def resolve(self, ref: str, resolver: Scope) -> tuple[Any, Scope, Parts | None]:
        """Follow a reference checked at construction: (target, its scope, its location).

        The scope is the one inside the target (do not :meth:`enter` it again). The location
        is None when the target is not a subschema (say, a pointer into an enum, or a
        metaschema). Raises ``referencing.exceptions.Unresolvable`` for a reference that does
        not resolve from this scope (one checked in another).
        """
        try:
            resolved = resolver.lookup(ref)
        except ValueError:  # a non-number step into an array
            raise Unresolvable(ref=ref) from None
        return resolved.contents, resolved.resolver, self._locations.get(id(resolved.contents))
