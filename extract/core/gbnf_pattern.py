"""A ``pattern`` as a grammar, read the way llama.cpp's json-schema-to-grammar reads it.

That converter takes ``^...$`` as the whole string and understands a small regex subset:
``.`` (any character but CR and LF), groups (``(?:`` is a plain group; lookarounds are skipped,
so they constrain nothing), ``|``, ``*``, ``+``, ``?``, ``{m}``, ``{m,}``, ``{,n}``, ``{m,n}``,
bracket classes, and literals (``\\`` before one of ``^$.[]()|{}*+?`` makes it literal). A class is
handed to the grammar parser as written, so only the escapes it knows work there; the same goes
for escapes outside a class (``\\d``, ``\\w`` fail). Matched characters go into the JSON string
as they are, unescaped, exactly as the converter writes them.

>>> pattern_rule("^[A-Z]{2}-[0-9]+$")
'([A-Z]{2,2} "-" [0-9]+)'
>>> pattern_rule("^a|bc?$")
'("a" | "b" "c"?)'
"""

from __future__ import annotations

import re

# Characters a backslash makes literal (the converter's own list).
_REGEX_ESCAPES = frozenset("^$.[]()|{}*+?")
# Escapes llama.cpp's grammar parser knows, in literals and classes alike.
_GRAMMAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "[": "[", "]": "]"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_SPECIAL = frozenset("|.()[]{}*+?")
_QUANTITY = re.compile(r"(\d*)(?:(,)(\d*))?")
DOT = r"[^\x0A\x0D]"


class PatternError(ValueError):
    """The pattern cannot become a grammar (the converter fails, or writes one that won't parse)."""


def pattern_rule(pattern: str) -> str:
    """The grammar expression for the characters between the JSON string's quotes.

    Raises:
        PatternError: not anchored with ``^...$``, unbalanced, or an escape the grammar lacks.
    """
    if len(pattern) < 2 or pattern[0] != "^" or pattern[-1] != "$":
        raise PatternError("Pattern must start with '^' and end with '$'")
    reader = _Reader(pattern[1:-1])
    body = reader.sequence(top=True)
    return f"({body})"


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def sequence(self, *, top: bool) -> str:
        """Items up to the closing parenthesis of this group (or the end)."""
        items: list[tuple[str, bool]] = []  # (grammar, is one literal character)
        while self.i < len(self.text):
            c = self.text[self.i]
            if c == ")":
                if top:
                    raise PatternError("Unbalanced parentheses")
                self.i += 1
                return _join(items)
            if c == "|":
                self.i += 1
                items.append(("|", False))
            elif c == "(":
                self.i += 1
                if self.text.startswith("?:", self.i):
                    self.i += 2
                elif self.text.startswith("?", self.i):
                    self.skip_group()  # a lookaround: the converter leaves it out
                    continue
                items.append((f"({self.sequence(top=False)})", False))
            elif c == ".":
                self.i += 1
                items.append((DOT, False))
            elif c == "[":
                items.append((self.bracket(), False))
            elif c in "*+?":
                self.i += 1
                self.repeat(items, c)
            elif c == "{":
                self.repeat(items, self.braces())
            else:
                items.append((_literal(self.char()), True))
        if not top:
            raise PatternError("Unbalanced parentheses")
        return _join(items)

    def skip_group(self) -> None:
        depth = 1
        while self.i < len(self.text) and depth:
            if self.text[self.i] == "\\":
                self.i += 2
                continue
            depth += {"(": 1, ")": -1}.get(self.text[self.i], 0)
            self.i += 1

    def char(self) -> str:
        """One literal character, its regex escape resolved."""
        c = self.text[self.i]
        if c != "\\" or self.i + 1 >= len(self.text):
            self.i += 1
            return c
        nxt = self.text[self.i + 1]
        if nxt in _REGEX_ESCAPES:
            self.i += 2
            return nxt
        return self.grammar_escape()

    def grammar_escape(self) -> str:
        """An escape left for the grammar parser: what it means there, or an error."""
        nxt = self.text[self.i + 1]
        if nxt in _GRAMMAR_ESCAPES:
            self.i += 2
            return _GRAMMAR_ESCAPES[nxt]
        width = _HEX_ESCAPES.get(nxt)
        digits = self.text[self.i + 2 : self.i + 2 + width] if width else ""
        if width and re.fullmatch(r"[0-9a-fA-F]+", digits) and len(digits) == width:
            self.i += 2 + width
            return chr(int(digits, 16))
        raise PatternError(f"the grammar has no escape \\{nxt} (in pattern {self.text!r})")

    def bracket(self) -> str:
        """A bracket class, as the grammar parser will read it."""
        self.i += 1
        negate = self.text.startswith("^", self.i)
        self.i += negate
        members: list[str] = []
        while self.i < len(self.text) and self.text[self.i] != "]":
            if self.text[self.i] == "\\" and self.i + 1 < len(self.text):
                members.append(_class_char(self.grammar_escape()))
            else:
                c = self.text[self.i]
                members.append(c if c == "-" else _class_char(c))
                self.i += 1
        if self.i >= len(self.text):
            raise PatternError("Unbalanced square brackets")
        self.i += 1
        return "[" + ("^" if negate else "") + "".join(members) + "]"

    def braces(self) -> tuple[int, int | None]:
        end = self.text.find("}", self.i)
        if end < 0:
            raise PatternError("Unbalanced curly brackets")
        match = _QUANTITY.fullmatch(self.text[self.i + 1 : end])
        self.i = end + 1
        if not match or (not match[1] and not match[2]) or (not match[1] and not match[3]):
            raise PatternError("Invalid number in curly brackets")
        low = int(match[1] or 0)
        if not match[2]:
            return low, low
        return low, int(match[3]) if match[3] else None

    def repeat(self, items: list[tuple[str, bool]], how: str | tuple[int, int | None]) -> None:
        if not items or items[-1][0] == "|":
            raise PatternError("a quantifier follows nothing")
        atom = items[-1][0]
        if isinstance(how, str):
            items[-1] = (f"{atom}{how}", False)
            return
        low, high = how
        items[-1] = (f"{atom}{{{low},{'' if high is None else high}}}", False)


def _join(items: list[tuple[str, bool]]) -> str:
    """Items in order, runs of literal characters merged into one literal."""
    out: list[str] = []
    run = ""
    for text, literal in items:
        if literal:
            run += text[1:-1]
            continue
        if run:
            out.append(f'"{run}"')
            run = ""
        out.append(text)
    if run:
        out.append(f'"{run}"')
    return " ".join(out)


def _literal(c: str) -> str:
    return f'"{escape(c)}"'


def escape(text: str) -> str:
    """``text`` spelled for inside a grammar literal or class."""
    out: list[str] = []
    for c in text:
        if c in '"\\[]':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02X}")
        else:
            out.append(c)
    return "".join(out)


def _class_char(c: str) -> str:
    # A hyphen meant as itself: the grammar parser has no escape for it, only its code.
    return "\\x2D" if c == "-" else escape(c)
