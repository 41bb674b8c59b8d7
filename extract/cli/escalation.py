"""The cascade's options of ``extract label``: --escalate, --thresholds, --cascade-config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..batch.cascade import Tier, check_thresholds, parse_tier, read_cascade
from ..errors import ConfigError
from .common import read_examples


def escalate_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --escalate, --thresholds and --cascade-config to a command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


_OPTIONS = [
    click.option(
        "--escalate",
        "escalate_specs",
        multiple=True,
        metavar="SPEC",
        help="A further tier of a cascade, as key=value pairs: model=, host= (repeatable), "
        "samples=, temperature=, examples=FILE. Records the tier before does not accept are "
        "labeled again by it. Repeat for more tiers; needs --thresholds.",
    ),
    click.option(
        "--thresholds",
        "thresholds_text",
        metavar="T1,T2,...",
        help="With --escalate: each tier's confidence threshold, the first tier's first (as "
        "`extract eval --cascade TARGET` chooses them on gold).",
    ),
    click.option(
        "--cascade-config",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help='A labeling config file whose "cascade" section holds the tiers and thresholds '
        "(--escalate and --thresholds override them).",
    ),
]


def resolve_cascade(
    specs: tuple[str, ...], text: str | None, config: Path | None
) -> tuple[list[Tier], list[float] | None]:
    """The tiers after the first and every tier's threshold, from --escalate and
    --thresholds, else from the config file's cascade section."""
    if config is not None:
        try:
            given = [parse_tier(s, lambda p: read_examples(Path(p))) for s in specs] or None
            if given is not None and text is not None:  # the file has nothing left to give
                return given, _thresholds(text, len(given))
            tiers, kept_thresholds = read_cascade(config, given)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        if text is None:
            return tiers, list(kept_thresholds)
        return tiers, _thresholds(text, len(tiers))
    if not specs:
        if text is not None:
            raise click.UsageError("--thresholds is for a cascade: give --escalate too")
        return [], None
    if text is None:
        raise click.UsageError(
            f"--escalate needs --thresholds: one per tier ({len(specs) + 1}), the first "
            "tier's first; choose them on gold with `extract eval --cascade TARGET`"
        )
    try:
        tiers = [parse_tier(spec, lambda p: read_examples(Path(p))) for spec in specs]
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    return tiers, _thresholds(text, len(tiers))


def _thresholds(text: str, tiers: int) -> list[float]:
    """--thresholds as numbers, one per tier (``tiers`` after the first, plus the first)."""
    try:
        thresholds = [float(t) for t in text.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: give numbers joined by commas", param_hint="--thresholds"
        ) from None
    try:
        check_thresholds(thresholds, tiers + 1)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    return thresholds
