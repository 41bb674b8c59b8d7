"""Integer bounds as a grammar: the decimal spellings of the integers in a range.

llama.cpp's json-schema-to-grammar writes ``minimum``/``maximum`` (and the exclusive ones) of an
``integer`` as digit rules. A bounded side is exact; an unbounded side stops at 16 digits, as its
plain integer rule does. Where a negative bound is set, it also admits ``-0`` (valid JSON, and
equal to 0, which such a range contains).

>>> digits_range(0, 23)
'[0-9] | ([1] [0-9] | [2] [0-3])'
>>> digits_range(None, 1)
'"-" ([1-9] | [1-9] [0-9]{1,15}) | [0-1]'
"""

from __future__ import annotations

# The most digits an integer has where a side is unbounded (the converter's integer rule).
MAX_DIGITS = 16
_CAP = 10**MAX_DIGITS - 1


def digits_range(low: int | None, high: int | None) -> str:
    """Grammar alternatives matching the integers in ``[low, high]`` (None: unbounded).

    Raises:
        ValueError: both sides are unbounded, or the range is empty.
    """
    if low is None and high is None:
        raise ValueError("an integer range needs at least one bound")
    if low is not None and high is not None and low > high:
        raise ValueError(f"no integer lies between {low} and {high}")
    alternatives: list[str] = []
    # Negative values: their magnitudes, from the smallest to the largest allowed.
    neg_low = max(1, -high) if high is not None and high < 0 else 1
    neg_high = -low if low is not None else _CAP
    if (low is None or low < 0) and neg_low <= neg_high:
        alternatives.append(f'"-" ({_naturals(neg_low, neg_high)})')
    if low is not None and low < 0 and (high is None or high >= 0):
        alternatives.append('"-0"')
    pos_low = max(0, low) if low is not None else 0
    pos_high = high if high is not None else _CAP
    if pos_high >= 0 and pos_low <= pos_high:
        alternatives.append(_naturals(pos_low, pos_high))
    return " | ".join(alternatives)


def _naturals(low: int, high: int) -> str:
    """Alternatives for ``low..high`` (both >= 0), one group per run of digit counts."""
    groups: list[str] = []
    whole: list[int] = []  # consecutive digit counts the range covers entirely
    for width in range(len(str(low)), len(str(high)) + 1):
        smallest = 10 ** (width - 1) if width > 1 else 0
        first, last = max(low, smallest), min(high, 10**width - 1)
        if first == smallest and last == 10**width - 1:
            whole.append(width)
            continue
        if whole:
            groups.append(_whole(whole[0], whole[-1]))
            whole = []
        groups.append(_same_width(str(first), str(last)))
    if whole:
        groups.append(_whole(whole[0], whole[-1]))
    return " | ".join(groups)


def _whole(width: int, top: int) -> str:
    """Every number of ``width..top`` digits (no leading zero)."""
    if width == 1:  # one digit includes 0; the longer ones start at 1
        return "[0-9]" if top == 1 else f"[0-9] | [1-9] [0-9]{{1,{top - 1}}}"
    return f"[1-9] [0-9]{{{width - 1},{top - 1}}}"


def _same_width(first: str, last: str) -> str:
    """The numbers from ``first`` to ``last``, both spelled with the same number of digits."""
    if first == last:
        return f'"{first}"'
    shared = 0
    while first[shared] == last[shared]:
        shared += 1
    head, rest_first, rest_last = first[:shared], first[shared + 1 :], last[shared + 1 :]
    a, b, n = int(first[shared]), int(last[shared]), len(rest_first)
    options: list[str] = []
    middle_from, middle_to = a, b
    if rest_first != "0" * n:  # the first digit cannot take every tail
        options.append(f"[{a}] {_group(_same_width(rest_first, '9' * n))}")
        middle_from = a + 1
    partial_last = rest_last != "9" * n
    if partial_last:
        middle_to = b - 1
    if middle_from <= middle_to:
        digit = f"[{middle_from}]" if middle_from == middle_to else f"[{middle_from}-{middle_to}]"
        options.append(f"{digit} {_digits(n)}" if n else digit)
    if partial_last:
        options.append(f"[{b}] {_group(_same_width('0' * n, rest_last))}")
    body = " | ".join(options)
    if head:
        return f'"{head}" {_group(body)}'
    return _group(body)


def _group(expression: str) -> str:
    return f"({expression})" if " | " in expression else expression


def _digits(n: int) -> str:
    return "[0-9]" if n == 1 else f"[0-9]{{{n}}}"
