"""P6's records, totals and report: the goal is judged on the server's seconds per valid record.

A configuration's cost per valid record is what the server spent on all its attempts (failed
ones included) divided by the records that came out valid; extract auto is set against the
best peer (the ``ollama`` client, instructor), while extract's other formats are reported
beside. Sampling is the server's default (temperature 0.8), as a user who sets nothing would
get, so a single run is noisy: each ratio stands beside a 95% interval from a paired bootstrap
over the records.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import random
from collections.abc import Callable

from ._harness import Outcome
from .docs import SCHEMAS
from .labels_meter import Cost

MAX_ATTEMPTS = 3
MAX_TOKENS = 192
GOAL_ATTEMPTS = 1.05
BOOTSTRAP_ROUNDS = 2000
OURS = "extract auto"
PEERS = ("ollama format=schema", "instructor JSON")


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """How one configuration did on one (document, schema)."""

    first_valid: bool
    valid: bool
    attempts: int
    reported: Cost  # what the replies say their attempts cost
    durations: bool = True  # whether the replies carry total_duration (OpenAI's do not)
    server: Cost = dataclasses.field(default_factory=Cost)  # what the server logged
    prior: Cost = dataclasses.field(default_factory=Cost)  # of that, extract's calibration
    seconds: float = 0.0  # wall clock, client included
    errors: tuple[str, ...] = ()  # what went wrong in each failed attempt


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    """One configuration's totals."""

    records: int
    first_valid: int
    valid: int
    attempts: int
    server: Cost
    seconds: float
    errors: collections.Counter[str]

    @classmethod
    def of(cls, records: list[Record]) -> Summary:
        return cls(
            records=len(records),
            first_valid=sum(r.first_valid for r in records),
            valid=sum(r.valid for r in records),
            attempts=sum(r.attempts for r in records),
            server=sum((r.server for r in records), Cost()),
            seconds=sum(r.seconds for r in records),
            errors=collections.Counter(e for r in records for e in r.errors),
        )

    @property
    def first_share(self) -> float:
        return self.first_valid / max(self.records, 1)

    @property
    def valid_share(self) -> float:
        return self.valid / max(self.records, 1)

    @property
    def mean_attempts(self) -> float:
        return self.attempts / max(self.records, 1)

    @property
    def seconds_per_valid(self) -> float:
        return _per_valid(self.server.seconds, self.valid)

    @property
    def tokens_per_valid(self) -> float:
        return _per_valid(self.server.tokens, self.valid)

    def per_generation(self, tokens: int) -> float:
        return tokens / max(self.server.requests, 1)


def _per_valid(cost: float, valid: int) -> float:
    return cost / valid if valid else math.inf


def _server_seconds(record: Record) -> float:
    return record.server.seconds


def _server_tokens(record: Record) -> float:
    return record.server.tokens


def ratio_interval(
    ours: list[Record],
    theirs: list[Record],
    cost: Callable[[Record], float],
    *,
    rounds: int = BOOTSTRAP_ROUNDS,
) -> tuple[float, float]:
    """A 95% interval of (our cost per valid record) ÷ (theirs), by a paired bootstrap.

    Both lists hold the same (document, schema) pairs in the same order; each round draws
    pairs with replacement, so one costly run of retries weighs as often on both sides.
    """
    rng = random.Random(0)  # the same draws on every run, for comparable intervals
    pairs = [(cost(a), a.valid, cost(b), b.valid) for a, b in zip(ours, theirs, strict=True)]
    ratios = []
    for _ in range(rounds):
        drawn = rng.choices(pairs, k=len(pairs))
        mine = _per_valid(sum(p[0] for p in drawn), sum(p[1] for p in drawn))
        other = _per_valid(sum(p[2] for p in drawn), sum(p[3] for p in drawn))
        ratios.append(mine / other if other not in (0, math.inf) else math.inf)
    ratios.sort()
    return ratios[int(0.025 * rounds)], ratios[int(0.975 * rounds) - 1]


def _disagreements(name: str, records: list[Record]) -> list[str]:
    """Where the server's log (but for extract's calibration requests, which belong to no
    attempt) and the replies' own counts differ for one configuration."""
    logged = sum((r.server for r in records), Cost())
    prior = sum((r.prior for r in records), Cost())
    reported = sum((r.reported for r in records), Cost())
    attempts = sum(r.attempts for r in records)
    found = []
    if (generations := logged.requests - prior.requests) != attempts:
        # extract stops reading a runaway reply; the server then drops that generation
        # unfinished, which logs nothing, and the attempt reports no counters either.
        why = " (attempts cut off mid-reply are never finished, so not logged)"
        found.append(f"{generations} generations for {attempts} attempts")
        if generations < attempts:
            found[-1] += why
    if logged.tokens - prior.tokens != reported.tokens:
        found.append(f"{logged.tokens - prior.tokens} tokens logged, {reported.tokens} reported")
    timed = [r for r in records if r.durations]
    log_s = sum(r.server.seconds - r.prior.seconds for r in timed)
    said_s = sum(r.reported.seconds for r in timed)
    if not math.isclose(log_s, said_s, rel_tol=1e-6, abs_tol=1e-6):
        found.append(f"{log_s:.3f} s logged, {said_s:.3f} s reported")
    return [f"{name}: {'; '.join(found)}"] if found else []


def outcome(results: dict[str, list[Record]], n_docs: int, planned: int, budget: float) -> Outcome:
    """P6's row and detail from every configuration's records, in the order they ran."""
    summaries = {name: Summary.of(records) for name, records in results.items()}
    auto = summaries[OURS]
    best_s = min(summaries[p].seconds_per_valid for p in PEERS)
    best_tokens = min(summaries[p].tokens_per_valid for p in PEERS)
    passed = (
        auto.records > 0
        and auto.valid == auto.records
        and auto.mean_attempts <= GOAL_ATTEMPTS
        and auto.seconds_per_valid <= best_s
    )
    cut = (
        f" (of {planned} planned: the {budget / 60:.0f}-minute budget ran out)"
        if n_docs < planned
        else ""
    )
    lines = [
        f"{n_docs} messages{cut} × {len(SCHEMAS)} schemas ({', '.join(SCHEMAS)}) = "
        f"{n_docs * len(SCHEMAS)} records per configuration, up to {MAX_ATTEMPTS} attempts and "
        f"{MAX_TOKENS} generated tokens per attempt; costs are the server's, over every attempt",
        "",
        "| configuration | first-try valid | valid | mean attempts | server s / valid record "
        "| tokens / valid record | prompt / generation | reply / generation | wall s / record |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        lines.append(
            f"| {name} | {s.first_valid}/{s.records} ({s.first_share:.0%}) "
            f"| {s.valid}/{s.records} ({s.valid_share:.0%}) | {s.mean_attempts:.2f} "
            f"| {s.seconds_per_valid:.2f} | {s.tokens_per_valid:.0f} "
            f"| {s.per_generation(s.server.prompt_tokens):.0f} "
            f"| {s.per_generation(s.server.output_tokens):.0f} "
            f"| {s.seconds / max(s.records, 1):.2f} |"
        )
    lines += [
        "",
        f"{OURS}'s server seconds per valid record (the goal) and tokens per valid record, each "
        "÷ the other configuration's, with 95% intervals from a paired bootstrap over the "
        f"records ({BOOTSTRAP_ROUNDS} rounds):",
        "",
    ]
    for name, s in summaries.items():
        if name == OURS or not s.valid:
            continue
        seconds = ratio_interval(results[OURS], results[name], _server_seconds)
        tokens = ratio_interval(results[OURS], results[name], _server_tokens)
        lines.append(
            f"- ÷ {name}: seconds {auto.seconds_per_valid / s.seconds_per_valid:.2f} "
            f"({seconds[0]:.2f}–{seconds[1]:.2f}), tokens "
            f"{auto.tokens_per_valid / s.tokens_per_valid:.2f} ({tokens[0]:.2f}–{tokens[1]:.2f})"
        )
    lines += ["", "What failed attempts failed on:", ""]
    for name, s in summaries.items():
        kinds = ", ".join(f"{kind} × {n}" for kind, n in s.errors.most_common()) or "nothing"
        lines.append(f"- {name}: {kinds}")
    disagreements = [d for name, rs in results.items() for d in _disagreements(name, rs)]
    priors = {name: sum((r.prior for r in rs), Cost()) for name, rs in results.items()}
    calibration = ", ".join(
        f"{name} {p.requests} ({p.seconds:.2f} s)" for name, p in priors.items() if p.requests
    )
    lines += [
        "",
        f"Calibration requests (content-free document), counted in the costs above: "
        f"{calibration or 'none'}.",
        "The server's log against the replies' own counts (generations = attempts, tokens, and "
        "total_duration where the replies carry it): "
        + ("they agree." if not disagreements else "they differ:"),
        *(f"- {d}" for d in disagreements),
    ]
    return Outcome(
        "P6",
        f"real model (SmolLM2-135M), {n_docs} docs × {len(SCHEMAS)} schemas: extract "
        "json/schema/auto vs ollama format=schema vs instructor JSON",
        f"auto: {auto.valid_share:.0%} valid, {auto.mean_attempts:.2f} attempts, "
        f"{auto.seconds_per_valid:.2f} server s/valid (best peer {best_s:.2f}); "
        f"{auto.tokens_per_valid:.0f} tok/valid (best peer {best_tokens:.0f})",
        f"100% valid, ≤ {GOAL_ATTEMPTS} attempts, server s/valid ≤ best peer's",
        passed,
        tuple(lines),
    )
