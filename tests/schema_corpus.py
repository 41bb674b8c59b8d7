"""Real-world JSON Schemas, and what extract makes of each: load, grammar form, validation.

The corpus:

- ``suite``: every schema of the vendored JSON-Schema-Test-Suite (``tests/data``), with the
  instances its tests validate;
- ``schemastore``: the SchemaStore schemas that the ``check-jsonschema`` package ships (a dev
  dependency), such as GitHub workflows, GitLab CI, Renovate and Docker Compose;
- ``kubernetes``: Kubernetes resource schemas (``tests/data/kubernetes``, cut from the
  ``kubernetes-validate`` package: one kind each, with the definitions it refers to), whose
  ``JSONSchemaProps`` has a property literally named ``$ref``.

Run it as a script to print the load and grammar rates per source::

    python tests/schema_corpus.py
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import referencing.exceptions

DATA = Path(__file__).parent / "data"
SUITE = DATA / "json-schema-test-suite" / "draft2020-12"
KUBERNETES = DATA / "kubernetes"


@dataclasses.dataclass(frozen=True)
class Case:
    source: str
    name: str
    schema: Any
    instances: tuple[Any, ...]


def schemastore_dir() -> Path:
    """Where check-jsonschema keeps its vendored SchemaStore schemas."""
    spec = importlib.util.find_spec("check_jsonschema")  # found, not imported: data only
    assert spec is not None, "pip install check-jsonschema"
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "builtin_schemas" / "vendor"


def cases() -> Iterator[Case]:
    for path in sorted(SUITE.rglob("*.json")):
        for group in json.loads(path.read_text(encoding="utf-8")):
            instances = tuple(test["data"] for test in group["tests"])
            name = f"{path.relative_to(SUITE)}: {group['description']}"
            yield Case("suite", name, group["schema"], instances)
    for source, folder in (("schemastore", schemastore_dir()), ("kubernetes", KUBERNETES)):
        for path in sorted(folder.glob("*.json")):
            yield Case(source, path.name, json.loads(path.read_text(encoding="utf-8")), ({},))


def jsonschema_accepts(case: Case) -> bool:
    """Whether ``jsonschema`` takes the schema: its draft's metaschema passes, and validating
    the case's instances raises no schema or reference-resolution error."""
    schema = case.schema
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
        validator = cls(schema)
        for instance in case.instances:
            for _ in validator.iter_errors(instance):
                pass
    except (
        jsonschema.exceptions.SchemaError,
        jsonschema.exceptions._WrappedReferencingError,
        referencing.exceptions.Unresolvable,
    ):
        return False
    return True


def measure() -> dict[str, collections.Counter[str]]:
    """Per source: schemas, accepted by jsonschema, loaded by extract, with a grammar form,
    and any exception that is not one of extract's own."""
    from grammar_support import recognised

    from extract import Schema
    from extract.errors import ExtractError

    tally: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for case in cases():
        counts = tally[case.source]
        counts["schemas"] += 1
        accepted = jsonschema_accepts(case)
        counts["jsonschema accepts"] += accepted
        try:
            schema = Schema.load(case.schema)
            for instance in case.instances:
                with contextlib.suppress(ExtractError):
                    schema.validate(instance)
        except ExtractError:
            counts["refused by extract, jsonschema accepts"] += accepted
            continue
        except Exception as exc:  # what the corpus exists to find
            counts[f"untyped {type(exc).__name__}"] += 1
            continue
        counts["loaded"] += 1
        if schema.grammar is not None:
            counts["grammar"] += 1
            try:
                recognised(schema.grammar, schema.grammar)
            except AssertionError:
                continue
            counts["grammar every converter takes"] += 1
    return tally


def main() -> None:
    for source, counts in measure().items():
        n, loaded, grammars = counts["schemas"], counts["loaded"], counts["grammar"]
        print(f"{source}: {n} schemas, jsonschema accepts {counts['jsonschema accepts']}")
        print(f"  loaded {loaded} ({loaded / n:.1%})")
        refused = counts["refused by extract, jsonschema accepts"]
        print(f"  refused though jsonschema accepts: {refused}")
        print(f"  with a grammar form {grammars} ({grammars / max(loaded, 1):.1%} of loaded)")
        taken = counts["grammar every converter takes"]
        print(f"  grammar forms every converter takes {taken} ({taken / max(loaded, 1):.1%})")
        for key, value in counts.items():
            if key.startswith("untyped"):
                print(f"  {key}: {value}")


if __name__ == "__main__":
    sys.path.append(str(Path(__file__).parent.parent))  # after PYTHONPATH: measure any tree
    main()
