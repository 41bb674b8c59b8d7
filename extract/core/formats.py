"""String formats: which ``format`` values extract checks, the same set on every install.

jsonschema's own format checker checks a format only when some optional package happens to be
importable, and checks URIs with a GPL package instead when that one is present: the same reply
could pass on one machine and fail on another. So extract builds one checker of its own, with a
predicate per format that calls only the standard library and extract's declared dependencies:

- it checks exactly :data:`CHECKED_FORMATS`, whatever else is installed;
- a missing dependency fails the import of this module, never a check, so nothing is skipped;
- every other ``format`` (``iri``, ``iri-reference``, or a made-up one) is an annotation: any
  string passes.

``iri`` and ``iri-reference`` stay unchecked because their only non-GPL checker parses with an
Earley grammar: over a second to import and about 10 ms a value.

Formats apply to strings only: a number or an object passes every format check, as the
specification says. Durations and JSON pointers are checked against their grammars (RFC 3339
appendix A, RFC 6901, and the relative JSON pointer draft that 2020-12 cites) by regular
expressions written here; they are short enough that a package would add nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import date

from jsonschema import FormatChecker

try:
    import idna
    import uri_template
    from fqdn import FQDN
    from rfc3339_validator import validate_rfc3339  # type: ignore[import-untyped]
    from rfc3986_validator import validate_rfc3986  # type: ignore[import-untyped]
except ImportError as exc:  # a broken install: say so rather than accept values unchecked
    raise ImportError(
        f"extract checks string formats with the {exc.name!r} package, which is missing;"
        " reinstall extract so that its dependencies are installed too",
        name=exc.name,
    ) from exc

__all__ = ["CHECKED_FORMATS", "FORMAT_CHECKER"]

_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DURATION_TIME = r"T(?:[0-9]+H(?:[0-9]+M(?:[0-9]+S)?)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S)"
_DURATION = re.compile(
    rf"P(?:(?:[0-9]+D|[0-9]+M(?:[0-9]+D)?|[0-9]+Y(?:[0-9]+M(?:[0-9]+D)?)?)(?:{_DURATION_TIME})?"
    rf"|{_DURATION_TIME}|[0-9]+W)"
)
_JSON_POINTER = r"(?:/(?:[^~/]|~[01])*)*"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _date(value: str) -> bool:
    # fromisoformat alone also takes "20240229"; RFC 3339's full-date is only YYYY-MM-DD.
    if _FULL_DATE.fullmatch(value) is None:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:  # February 30th, month 13, year 0
        return False
    return True


def _date_time(value: str) -> bool:
    # RFC 3339 (section 5.6) lets "T" and "Z" be lower case.
    return bool(validate_rfc3339(value.upper()))


def _time(value: str) -> bool:
    return _date_time("1970-01-01T" + value)


def _email(value: str) -> bool:
    # The address grammars are too loose to check usefully (quoted local parts may hold
    # spaces and "@"); what every address has is something on each side of its last "@".
    local, _, domain = value.rpartition("@")
    return bool(local) and bool(domain)


def _hostname(value: str) -> bool:
    return bool(value) and FQDN(value, min_labels=1).is_valid


def _idn_hostname(value: str) -> bool:
    try:
        idna.encode(value)
    except UnicodeError:  # idna.IDNAError is one
        return False
    return True


def _ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _ipv6(value: str) -> bool:
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return address.scope_id is None  # "fe80::1%eth0" names an interface, not just an address


def _regex(value: str) -> bool:
    try:
        re.compile(value)
    except (re.error, OverflowError, RecursionError):  # bad syntax, huge repeat, deep nesting
        return False
    return True


def _rfc3986(rule: str) -> Callable[[str], bool]:
    return lambda value: validate_rfc3986(value, rule=rule) is not None


def _matches(pattern: str | re.Pattern[str]) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda value: compiled.fullmatch(value) is not None


def _one_line(predicate: Callable[[str], bool]) -> Callable[[str], bool]:
    # These packages match with "$", which also matches before a final line feed; no value of
    # their formats holds a line feed anywhere.
    return lambda value: "\n" not in value and predicate(value)


# In the order of the 2020-12 validation specification, section 7.3.
_PREDICATES: dict[str, Callable[[str], bool]] = {
    "date-time": _one_line(_date_time),
    "date": _date,
    "time": _one_line(_time),
    "duration": _matches(_DURATION),
    "email": _email,
    "idn-email": _email,
    "hostname": _one_line(_hostname),
    "idn-hostname": _idn_hostname,
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "uri": _one_line(_rfc3986("URI")),
    "uri-reference": _one_line(_rfc3986("URI_reference")),
    "uuid": _matches(_UUID),
    "uri-template": _one_line(uri_template.validate),
    "json-pointer": _matches(_JSON_POINTER),
    "relative-json-pointer": _matches(rf"(?:0|[1-9][0-9]*)(?:#|{_JSON_POINTER})"),
    "regex": _regex,
}

CHECKED_FORMATS: tuple[str, ...] = tuple(_PREDICATES)
"""The ``format`` values extract checks; any other format is an annotation and is not checked."""


def _on_strings(predicate: Callable[[str], bool]) -> Callable[[object], bool]:
    return lambda instance: not isinstance(instance, str) or predicate(instance)


def _checker() -> FormatChecker:
    # formats=() starts from an empty table: none of the checks jsonschema registered globally
    # (which depend on what is installed) come along.
    checker = FormatChecker(formats=())
    for name, predicate in _PREDICATES.items():
        checker.checks(name)(_on_strings(predicate))
    return checker


FORMAT_CHECKER = _checker()
"""The checker every ``Schema`` uses, for replies and for its metaschema."""
