"""Regular expressions as llama.cpp's json-schema-to-grammar can take them, or why it cannot.

The converter turns a ``pattern`` into grammar rules itself, from a small subset of regex
syntax. It reads ``^...$`` as the whole string, and writes the matched characters into the JSON
string unescaped. A pattern outside what it reads as JSON Schema does is left out of the grammar
(which only loosens it); one it reads the same but would spell into a broken grammar is
respelled.
"""

from __future__ import annotations

import re

# Repetition counts expand into one grammar rule per step; past this they are not worth it.
MAX_COUNT = 1000
_QUANTIFIER = re.compile(r"\{(\d+)(,(\d*))?\}")
# Escapes the converter turns into literals itself. It passes any other escape on to the
# grammar parser, which rejects "\." and "\$": those become one-character classes instead.
_ESCAPABLE = frozenset("[]()|{}*+?")
_AS_CLASS = {".": "[.]", "$": "[$]"}
_CLASS_ESCAPABLE = frozenset("[]\\")
# Characters JSON text escapes: the grammar writes a pattern's literals unescaped.
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')


def grammar_pattern(pattern: str) -> tuple[str, str | None]:
    """``pattern`` spelled as the converter takes it, and why it cannot take it (or None).

    The converter wants ``^...$`` and a small regex subset: no ``(?`` groups, no class escapes
    like ``\\d``, no anchors or ``|`` outside parentheses (it would read ``^a|b$`` as exactly
    "a" or "b", where JSON Schema reads "starts with a, or ends with b"), no literal it would
    have to write JSON-escaped. Escaped dots and dollars become classes.

    >>> grammar_pattern(r"^[A-Z]{2}-[0-9]+\\.[0-9]$")
    ('^[A-Z]{2}-[0-9]+[.][0-9]$', None)
    >>> grammar_pattern("[a-z]+")[1]
    'pattern is not anchored with ^...$, so it is not enforced'
    >>> grammar_pattern(r"^\\d+$")[1]
    'pattern uses regex features the grammar lacks, so it is not enforced'
    """
    if len(pattern) < 2 or pattern[0] != "^" or pattern[-1] != "$" or pattern.endswith("\\$"):
        return pattern, "pattern is not anchored with ^...$, so it is not enforced"
    unsupported = "pattern uses regex features the grammar lacks, so it is not enforced"
    body, out, i, depth, atom = pattern[1:-1], ["^"], 0, 0, False
    while i < len(body):
        c, after = body[i], body[i + 1 : i + 2]
        if c == "\\":
            if after not in _ESCAPABLE and after not in _AS_CLASS:
                return pattern, unsupported
            out.append(_AS_CLASS.get(after, c + after))
            i, atom = i + 2, True
            continue
        if c == "[":
            end = i + 1 + (after == "^")
            if body[end : end + 1] == "]":  # Python reads a leading "]" as a member
                return pattern, unsupported
            while end < len(body) and body[end] != "]":
                if body[end] == "\\" and body[end + 1 : end + 2] not in _CLASS_ESCAPABLE:
                    return pattern, unsupported
                end += 2 if body[end] == "\\" else 1
            if end >= len(body):
                return pattern, unsupported
            out.append(body[i : end + 1])
            i, atom = end + 1, True
            continue
        if c == "{":
            match = _QUANTIFIER.match(body, i)
            if not atom or match is None:
                return pattern, unsupported
            counts = [int(n) for n in (match.group(1), match.group(3)) if n]
            if any(n > MAX_COUNT for n in counts):
                return (
                    pattern,
                    f"pattern repeats more than {MAX_COUNT} times, so it is not enforced",
                )
            out.append(match.group())
            i = match.end()
            continue
        if c == "|" and depth == 0:
            return pattern, "pattern has | outside parentheses, so it is not enforced"
        if _JSON_ESCAPED.match(c):
            return pattern, "pattern needs a character JSON escapes, so it is not enforced"
        # A stray "]" sends llama-cpp-python's converter into an endless loop.
        if c in "^$}]" or (c == "(" and after == "?") or (c in "*+?" and not atom):
            return pattern, unsupported
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth < 0:
            return pattern, unsupported
        atom = c not in "(|"
        out.append(c)
        i += 1
    return "".join([*out, "$"]), unsupported if depth else None
