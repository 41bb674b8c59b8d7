"""String formats: exactly CHECKED_FORMATS are checked, the same whatever else is installed."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import hypothesis.strategies as st
import pydantic
import pytest
from hypothesis import given

import extract
from extract.core.formats import FORMAT_CHECKER
from extract.core.schema import CHECKED_FORMATS, Schema
from extract.errors import SchemaError, SchemaMismatch

# format -> (values it accepts, values it rejects)
VALUES: dict[str, tuple[list[str], list[str]]] = {
    "date-time": (
        ["2024-02-29T13:05:00Z", "2024-02-29t13:05:00.25+01:00"],
        [
            "2024-02-29T13:05:00",
            "2023-02-29T13:05:00Z",
            "2024-02-29 13:05Z",
            "2024-02-29T13:05:00Z\n",
        ],
    ),
    "date": (["2024-02-29", "1999-12-31"], ["2023-02-29", "20240229", "2024-2-9", "2024-02-29Z"]),
    "time": (["13:05:00Z", "23:59:59.999-07:30"], ["13:05:00", "25:00:00Z", "13:05Z"]),
    "duration": (
        ["P4Y", "PT0S", "P1DT12H", "P2W", "P3Y6M4DT12H30M5S", "PT36H", "P1M"],
        ["P", "PT", "P1YT", "P1Y2W", "P1D2H", "P2S", "P-1D", "P0.5Y", "4Y", "p1d"],
    ),
    "email": (
        ["ann@example.com", '"a b"@example.com'],
        ["ann.example.com", "ann@", "@example.com"],
    ),
    "idn-email": (["アン@例え.jp", "ann@example.com"], ["アン例え.jp", "アン@"]),
    "hostname": (
        ["www.example.com", "localhost", "xn--4gbwdl.xn--wgbh1c"],
        ["-a.example.com", "host_name", "", "a" * 64 + ".com", "example.com\n", "ex ample.com"],
    ),
    "idn-hostname": (["bücher.de", "例え.jp", "example.com"], ["", "ex ample.com", "a..b"]),
    "ipv4": (["192.168.0.1", "0.0.0.0"], ["256.1.1.1", "1.2.3", "01.2.3.4", "::1"]),
    "ipv6": (["::1", "2001:db8::ff00:42:8329"], ["12345::", "fe80::1%eth0", "1.2.3.4"]),
    "uri": (
        ["https://example.com/a?b=c#d", "urn:isbn:0451450523", "mailto:ann@example.com"],
        ["//example.com/a", "example.com", "https://example.com/a b", "https://example.com/\n"],
    ),
    "uri-reference": (
        ["../a/b?c", "#frag", "", "https://example.com/"],
        ["https://example.com/a b", "\\\\server\\share", "%zz"],
    ),
    "uuid": (
        ["12345678-1234-1234-1234-123456789abc", "12345678-1234-1234-1234-123456789ABC"],
        ["12345678123412341234123456789abc", "{12345678-1234-1234-1234-123456789abc}"],
    ),
    "uri-template": (
        ["https://example.com/{id}{?q,lang}", "/{+path}/x", "{x:3}", "plain"],
        ["https://example.com/{id", "/{a b}", "}{"],
    ),
    "json-pointer": (["", "/a~1b/0", "/~0", "/"], ["a/b", "/~2", "/~", "#/a"]),
    "relative-json-pointer": (["0", "1/a~1b", "2#", "10"], ["-1", "01/a", "/a", "#", "1#/a"]),
    "regex": (
        ["^[a-z]+$", "(?P<name>x)|y"],
        ["(", "[a-", "a{99999999999}"],
    ),
}

CASES = [
    pytest.param(name, value, ok, id=f"{name}-{'ok' if ok else 'bad'}-{index}")
    for name, (good, bad) in VALUES.items()
    for ok, values in ((True, good), (False, bad))
    for index, value in enumerate(values)
]


def test_every_checked_format_has_cases() -> None:
    assert tuple(VALUES) == CHECKED_FORMATS


def test_the_checker_checks_exactly_the_constant() -> None:
    assert tuple(FORMAT_CHECKER.checkers) == CHECKED_FORMATS


def test_the_constant_is_public() -> None:
    assert "CHECKED_FORMATS" in extract.__all__
    assert extract.CHECKED_FORMATS is CHECKED_FORMATS
    assert all(isinstance(name, str) for name in CHECKED_FORMATS)


@pytest.mark.parametrize(("name", "value", "ok"), CASES)
def test_format(name: str, value: str, ok: bool) -> None:
    schema = Schema.load({"type": "string", "format": name})
    if ok:
        assert schema.validate(value) == value
    else:
        with pytest.raises(SchemaMismatch, match=f"is not a '{name}'"):
            schema.validate(value)


def test_a_mismatch_names_its_path() -> None:
    schema = Schema.load({"properties": {"site": {"type": "string", "format": "uri"}}})
    with pytest.raises(SchemaMismatch) as caught:
        schema.validate({"site": "example.com"})
    assert caught.value.path == "$.site"


@pytest.mark.parametrize("name", ["iri", "iri-reference", "ipvanyaddress", "color", "made-up"])
def test_other_formats_are_annotations(name: str) -> None:
    assert name not in CHECKED_FORMATS
    schema = Schema.load({"type": "string", "format": name})
    assert schema.validate("not \n anything ::: at all") == "not \n anything ::: at all"


@pytest.mark.parametrize("value", [5, 2.5, None, True, [], {}])
def test_formats_apply_to_strings_only(value: object) -> None:
    schema = Schema.load({"format": "date"})
    assert schema.validate(value) == value


def test_a_regex_too_deep_to_compile_is_not_a_regex() -> None:
    # Python's parser recurses per group: deep nesting fails with RecursionError, not re.error.
    assert not FORMAT_CHECKER.conforms("(" * 5000 + ")" * 5000, "regex")


@given(name=st.sampled_from(CHECKED_FORMATS), value=st.text(max_size=60))
def test_a_check_never_raises_anything_but_a_verdict(name: str, value: str) -> None:
    # A check that crashed would turn a bad reply into an error that is not a mismatch.
    assert FORMAT_CHECKER.conforms(value, name) in (True, False)


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"$ref": "#/$defs/a b", "$defs": {"a b": {}}}, "$.$ref"),
        ({"$id": "https://example.com/a b"}, "$.$id"),
        ({"properties": {"x": {"pattern": "("}}}, "$.properties.x.pattern"),
    ],
)
def test_the_metaschema_check_uses_the_same_formats(schema: dict[str, object], path: str) -> None:
    with pytest.raises(SchemaError) as caught:
        Schema.load(schema)
    assert caught.value.path == path


def _python(code: str, pythonpath: list[Path]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter whose path starts with ``pythonpath``, then extract."""
    root = Path(extract.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [*pythonpath, root]))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_an_optional_package_changes_nothing(tmp_path: Path) -> None:
    # rfc3987 (GPL) is the package jsonschema prefers for URIs and IRIs when it is importable.
    # This stand-in accepts everything, so jsonschema's own checker starts checking "iri" and
    # passes any "uri"; extract's must not follow.
    (tmp_path / "rfc3987.py").write_text("def parse(value, rule):\n    return {'ok': True}\n")
    done = _python(
        """
        import jsonschema
        from extract.core.formats import FORMAT_CHECKER
        from extract.errors import SchemaMismatch
        from extract.core.schema import CHECKED_FORMATS, Schema

        theirs = jsonschema.Draft202012Validator.FORMAT_CHECKER
        assert "iri" in theirs.checkers and theirs.conforms("no scheme", "uri")
        assert tuple(FORMAT_CHECKER.checkers) == CHECKED_FORMATS
        Schema.load({"format": "iri"}).validate("no scheme")
        try:
            Schema.load({"format": "uri"}).validate("no scheme")
        except SchemaMismatch:
            print("uri checked")
        """,
        [tmp_path],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "uri checked\n"


def test_a_missing_checker_package_fails_the_import() -> None:
    done = _python(
        """
        import sys
        sys.modules["fqdn"] = None  # as if the package were not installed
        import extract
        """,
        [],
    )
    assert done.returncode == 1
    assert "ImportError: extract checks string formats with the 'fqdn' package" in done.stderr
    assert "reinstall extract" in done.stderr


class Link(pydantic.BaseModel):
    url: pydantic.AnyUrl
    seen: datetime.datetime


def test_a_model_field_with_a_format_rejects_what_both_reject() -> None:
    schema = Schema.load(Link)
    assert schema.json_schema["properties"]["url"]["format"] == "uri"
    with pytest.raises(SchemaMismatch) as caught:
        schema.validate({"url": "example.com", "seen": "2024-05-01T10:00:00Z"})
    assert caught.value.path == "$.url"
    assert "is not a 'uri'" in caught.value.reason


@pytest.mark.parametrize(
    ("reply", "field"),
    [
        # pydantic escapes the space; RFC 3986 has no space in a URI.
        ({"url": "https://example.com/a b", "seen": "2024-05-01T10:00:00Z"}, "url"),
        # pydantic takes a time without an offset, and a bare date; RFC 3339 needs both parts.
        ({"url": "https://example.com/", "seen": "2024-05-01T10:00:00"}, "seen"),
        ({"url": "https://example.com/", "seen": "2024-05-01"}, "seen"),
    ],
)
def test_the_model_decides_when_it_is_more_lenient_than_the_format(
    reply: dict[str, str], field: str
) -> None:
    # The model is the authority: what it accepts is returned, even where the same JSON Schema
    # without the model rejects the value for its format.
    assert isinstance(Schema.load(Link).validate(reply), Link)
    bare = Schema.load(Link.model_json_schema())
    with pytest.raises(SchemaMismatch) as caught:
        bare.validate(reply)
    assert caught.value.path == f"$.{field}"


def test_the_model_returns_its_normalised_value() -> None:
    link = Schema.load(Link).validate({"url": "https://example.com/a b", "seen": "2024-05-01"})
    assert str(link.url) == "https://example.com/a%20b"
    assert link.seen == datetime.datetime(2024, 5, 1)  # pydantic keeps it naive
