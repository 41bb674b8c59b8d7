"""The cascade: records the first tier does not accept are labeled again by the next.

A tier is a model (and hosts) with its own call options: another model, another host, or a
costlier setting of the same model (more samples, worked examples). Each tier has a threshold
on the record's confidence (its least confident field), chosen jointly on gold so that the
cascade's accepted records as a whole keep a guaranteed accuracy (``extract.core.cascade``).

A record is labeled by tier 1; when its confidence is below tier 1's threshold, or it failed,
tier 2 labels it, and so on. The first tier to reach its threshold gives the final record,
``accepted`` and carrying its ``tier`` (1-based). When no tier accepts it, the final record is
the last tier's that is ok (or the last tier's failure), ``accepted`` False, for review. Every
tier's attempts and usage are summed into the final record, so its cost is the cascade's.

Input is taken in blocks: each block goes through tier 1, then what it did not accept through
tier 2, and so on, and the block's final records come out in input order. Only final records
leave, so an output written from them holds one record per input line whatever stops the run.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..client.calls import CallOptions
from ..core.cascade import CascadeGuarantee
from ..errors import ConfigError
from .records import Document, Record, to_document

# Documents per block: enough to keep every host's window full, few enough to hold in memory.
BLOCK = 64


@dataclasses.dataclass(frozen=True, slots=True)
class Tier:
    """A tier after the first: its model and hosts (None: the first tier's) and the call
    options that differ from the first tier's (``samples``, ``examples``, ...)."""

    model: str | None = None
    hosts: tuple[str, ...] | None = None
    options: CallOptions = dataclasses.field(default_factory=lambda: CallOptions())

    @classmethod
    def of(cls, given: Tier | Mapping[str, Any]) -> Tier:
        """A Tier from itself or a mapping (``{"model", "hosts", "options"}``, as the labeling
        config's ``cascade.tiers`` holds). Raises ConfigError for anything else."""
        if isinstance(given, Tier):
            return given
        if not isinstance(given, Mapping):
            raise ConfigError(f"a tier is a Tier or a mapping, not {type(given).__name__}")
        unknown = set(given) - {"model", "hosts", "options"}
        if unknown:
            raise ConfigError(
                f"tier: unknown {', '.join(sorted(unknown))} (known: model, hosts, options)"
            )
        hosts = given.get("hosts")
        if isinstance(hosts, str):
            hosts = [hosts]
        options: Any = given.get("options", {})
        if not isinstance(options, Mapping):
            raise ConfigError("tier options must be a mapping of call options")
        if "examples" in options:
            options = {**options, "examples": [_example(e) for e in options["examples"]]}
        return cls(given.get("model"), None if hosts is None else tuple(hosts), dict(options))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form :meth:`of` reads back."""
        options: dict[str, Any] = dict(self.options)
        if "examples" in options:
            options["examples"] = [{"text": t, "value": v} for t, v in options["examples"]]
        out: dict[str, Any] = {"options": options}
        if self.model is not None:
            out["model"] = self.model
        if self.hosts is not None:
            out["hosts"] = list(self.hosts)
        return out


def parse_tier(spec: str, read_examples: Callable[[str], list[tuple[str, Any]]]) -> Tier:
    """A tier from ``key=value`` pairs joined by commas: ``model``, ``host`` (repeatable),
    ``samples``, ``temperature`` (the confidence temperature), ``examples`` (a JSONL file of
    ``{"text", "value"}``, read by ``read_examples``). Raises ConfigError naming the bad pair.

    >>> parse_tier("model=big,samples=3", lambda p: [])
    Tier(model='big', hosts=None, options={'samples': 3})
    """
    model: str | None = None
    hosts: list[str] = []
    options: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not value:
            raise ConfigError(f"--escalate {spec!r}: {pair!r} is not key=value")
        if key == "model":
            model = value
        elif key == "host":
            hosts.append(value)
        elif key == "samples":
            options["samples"] = _positive_int(value, spec)
        elif key == "temperature":
            options["confidence_temperature"] = _positive_float(value, spec)
        elif key == "examples":
            options["examples"] = read_examples(value)
        else:
            raise ConfigError(
                f"--escalate {spec!r}: unknown {key!r} (known: model, host, samples, "
                "temperature, examples)"
            )
    if model is None and not hosts and not options:
        raise ConfigError(f"--escalate {spec!r}: name a model, a host or a costlier setting")
    return Tier(model, tuple(hosts) or None, options)  # type: ignore[arg-type]


def check_thresholds(thresholds: Sequence[float] | None, tiers: int) -> tuple[float, ...]:
    """One threshold per tier, each in 0..1. Raises ConfigError saying what is missing."""
    if thresholds is None or len(thresholds) != tiers:
        given = 0 if thresholds is None else len(thresholds)
        raise ConfigError(
            f"a cascade of {tiers} tiers needs {tiers} thresholds (got {given}): choose them on "
            "gold with `extract eval --cascade TARGET`, or give them by hand"
        )
    for t in thresholds:
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 1:
            raise ConfigError(f"threshold {t!r}: give a confidence between 0 and 1")
    return tuple(float(t) for t in thresholds)


# The labeling config file's key and version (``extract.batch.labeling_config``): a file
# created here for the thresholds alone carries them, so ``label --config`` reads it.
CONFIG_KEY, CONFIG_VERSION = "extract_labeling_config", 1


def read_cascade(
    path: str | os.PathLike[str], tiers: Sequence[Tier] | None = None
) -> tuple[list[Tier], tuple[float, ...]]:
    """The tiers after the first and every tier's threshold, from a labeling config file's
    ``"cascade"`` section: ``{"tiers": [{"model", "hosts", "options"}, ...], "thresholds":
    [first tier's, ...]}``. ``tiers`` given (``--escalate``) stand in for the section's own,
    which may then be missing. Raises ConfigError naming the file and what is wrong."""
    section = _load(Path(path)).get("cascade")
    if not isinstance(section, dict) or (
        tiers is None and not isinstance(section.get("tiers"), list)
    ):
        raise ConfigError(
            f'{path} has no "cascade" section with "tiers": write the tiers there '
            '(each {"model", "hosts", "options"}), then their thresholds with '
            "`extract eval --cascade TARGET --write-cascade`"
        )
    try:
        chosen = list(tiers) if tiers is not None else [Tier.of(t) for t in section["tiers"]]
        thresholds = check_thresholds(section.get("thresholds"), len(chosen) + 1)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return chosen, thresholds


def write_thresholds(path: str | os.PathLike[str], found: CascadeGuarantee) -> None:
    """Put jointly chosen thresholds (and what backs them) into the config file's
    ``"cascade"`` section, keeping its tiers and every other key; creates the file when
    missing. Written to a temporary file, then renamed over it. Raises ConfigError when the
    file is not a JSON object or cannot be written, or ``found`` is a refusal."""
    if found.thresholds is None:
        raise ConfigError(f"no thresholds to write: {found.reason}")
    target = Path(path)
    data: dict[str, Any] = _load(target) if target.exists() else {CONFIG_KEY: CONFIG_VERSION}
    section = data.get("cascade")
    section = dict(section) if isinstance(section, dict) else {"tiers": []}
    section["thresholds"] = [round(t, 6) for t in found.thresholds]
    section["guarantee"] = {
        "target_accuracy": found.target,
        "delta": found.delta,
        "gold_records": found.records,
        "accepted": found.accepted,
        "coverage": round(found.coverage, 4),
        "accuracy": round(found.accuracy or 0.0, 4),
        "lower_bound": round(found.bound or 0.0, 4),
    }
    data["cascade"] = section
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"config {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} is not a JSON object")
    return data


Label = Callable[[int, list[Document]], AsyncIterator[Record]]


async def cascade(
    label: Label,
    thresholds: Sequence[float],
    records: Iterable[Any] | AsyncIterable[Any],
    *,
    id_field: str,
    text_field: str,
    block: int = BLOCK,
) -> AsyncIterator[Record]:
    """The final record of every input, in input order (module docstring). ``label(tier,
    docs)`` labels documents with tier ``tier`` (0-based) and yields one record per document,
    in order."""
    async for docs in _blocks(records, block, id_field, text_field):
        tried: list[list[Record]] = [[] for _ in docs]
        waiting = list(range(len(docs)))
        for tier, threshold in enumerate(thresholds):
            if not waiting:
                break
            still: list[int] = []
            outcomes = label(tier, [docs[i] for i in waiting])
            for i in waiting:
                record = await anext(outcomes)
                tried[i].append(dataclasses.replace(record, tier=tier + 1))
                least = record.min_confidence
                if not (record.ok and least is not None and least >= threshold):
                    still.append(i)
            await outcomes.aclose()  # type: ignore[attr-defined]
            waiting = still
        pending = set(waiting)
        for i, attempts in enumerate(tried):
            yield final(attempts, accepted=i not in pending)


def final(tried: Sequence[Record], *, accepted: bool) -> Record:
    """The record a document ends as, from each tier's (in order): the last one when accepted
    (it is the accepting tier's), else the last ok one (or the last failure); every tier's
    attempts and usage summed into it."""
    chosen = tried[-1]
    if not accepted:
        chosen = next((r for r in reversed(tried) if r.ok), tried[-1])
    usage = tried[0].usage
    for record in tried[1:]:
        usage = usage + record.usage
    return dataclasses.replace(
        chosen,
        attempts=sum(r.attempts for r in tried),
        usage=usage,
        cached=all(r.cached for r in tried),
        accepted=accepted,
        tier_usage=tuple(r.usage for r in tried),
    )


async def _blocks(
    records: Iterable[Any] | AsyncIterable[Any], size: int, id_field: str, text_field: str
) -> AsyncIterator[list[Document]]:
    position = itertools.count(1)

    def doc(item: Any) -> Document:
        return to_document(item, next(position), id_field=id_field, text_field=text_field)

    block: list[Document] = []
    if isinstance(records, AsyncIterable):
        async for item in records:
            block.append(doc(item))
            if len(block) == size:
                yield block
                block = []
    else:
        for item in records:
            block.append(doc(item))
            if len(block) == size:
                yield block
                block = []
    if block:
        yield block


def _example(raw: Any) -> tuple[str, Any]:
    if isinstance(raw, Mapping) and isinstance(raw.get("text"), str) and "value" in raw:
        return raw["text"], raw["value"]
    if isinstance(raw, Sequence) and len(raw) == 2 and isinstance(raw[0], str):
        return raw[0], raw[1]
    raise ConfigError('tier examples must be {"text", "value"} objects')


def _positive_int(value: str, spec: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"--escalate {spec!r}: samples={value!r} must be a whole number ≥ 1")
    return number


def _positive_float(value: str, spec: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise ConfigError(f"--escalate {spec!r}: temperature={value!r} must be a number > 0")
    return number
