"""``tune``: choose the labeling options on the user's own gold, by cross-validation.

The space is small and explicit (:class:`Space`): task sentences, the schema's rendering,
k worked examples drawn from the gold, the prior (in-domain or ``N/A``) and the number of
samples. A share of the gold (40% by default) is set aside first for calibration: no candidate
ever sees it, so a threshold set on it later (``extract eval --target-accuracy``) is set on
labels that played no part in the choice. The rest is split into folds; a record is labeled
with examples drawn only from the *other* folds.

Every candidate cannot be scored on every record in a 30-minute budget on a small CPU, so the
search runs successive halving: all candidates on a small stratified subset, the better half
on twice as many, and so on until the last two (and the default, always kept for the paired
comparison) are scored on all the tuning records. The cache makes every round reuse the
records already labeled, and a rerun costs next to nothing.

Model calls are counted as they are made (attempts of uncached records, and the in-domain
prior's documents); with ``budget``, no record is started that could take the count past it
(a record's retries can still add a few calls).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

from .._version import __version__
from ..client.backends import BackendName
from ..client.calls import CallOptions
from ..core import tuning
from ..core.calibration import DOMAIN_DOCUMENTS, DOMAIN_MIN_DOCUMENTS
from ..core.prompt import build_prompt
from ..core.schema import Schema
from ..errors import ConfigError, ExtractError, SchemaMismatch
from .cache import Cache
from .evaluation.data import Gold, outcome_of
from .evaluation.evaluate import score
from .evaluation.metrics import calibration, paired_bootstrap
from .labeling_config import LabelingConfig, Provenance, decode_path
from .run import WARM_UP_DOCUMENTS
from .session import Labeling
from .tune_space import (
    DEFAULT_SHOTS,
    Candidate,
    GoldSet,
    Progress,
    Result,
    Space,
    TuneReport,
)

__all__ = [
    "DEFAULT_SHOTS",
    "Candidate",
    "GoldSet",
    "Result",
    "Space",
    "TuneReport",
    "Tuner",
    "tune",
]


class _Spent(Exception):
    """The budget would be passed by the next record."""


class Tuner:
    """One tuning run: gold, schema, space, and where the model is."""

    def __init__(
        self,
        gold: GoldSet,
        schema: Any,
        *,
        model: str | None = None,
        hosts: Sequence[str] | None = None,
        backend: BackendName = "ollama",
        space: Space | None = None,
        folds: int = tuning.DEFAULT_FOLDS,
        calibration_share: float = tuning.DEFAULT_CALIBRATION,
        budget: int | None = None,
        cache: Cache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int = 0,
        progress: Progress | None = None,
        options: CallOptions | None = None,
    ) -> None:
        self.gold, self.schema = gold, Schema.load(schema)
        self.model, self.hosts = model, list(hosts or []) or None
        self.backend = backend
        self.space = space or Space()
        self.candidates = self.space.candidates()
        self.budget, self.cache, self.transport, self.seed = budget, cache, transport, seed
        self.progress = progress or (lambda _: None)
        self.options: CallOptions = options or {}
        if budget is not None and budget < 1:
            raise ConfigError(f"the budget must be at least 1 model call, not {budget}")
        keys = sorted(gold.texts)
        try:
            self.tuning, self.calibration = tuning.calibration_split(
                keys, gold.strata, calibration_share, seed=seed
            )
            self.folds = tuning.assign_folds(self.tuning, gold.strata, folds, seed=seed)
        except ValueError as exc:
            raise ConfigError(
                f"{exc}; give more gold, fewer --folds or a smaller --calibration"
            ) from None
        self.n_folds = folds
        # Examples must be whole values the schema accepts (gold may hold only some fields).
        self.usable = [k for k in self.tuning if _valid(self.schema, gold.values[k])]
        if not self.usable and any(c.shots for c in self.candidates):
            # k=2 without examples to draw would be k=0 again, scored twice.
            self.progress(
                "no gold value is a whole value of the schema, so no worked examples are tried"
            )
            self.candidates = [c for c in self.candidates if c.shots == 0]
        self.order = tuning.draw_examples(self.tuning, gold.strata, len(self.tuning), seed=seed)
        self.calls = 0
        self._sessions: dict[tuple[Candidate, int | None], Labeling] = {}
        self._right: dict[Candidate, dict[str, bool]] = {}
        self._confidence: dict[Candidate, dict[str, float | None]] = {}
        self._cost: dict[Candidate, list[tuple[float, int]]] = {}
        self._show: tuple[str, str | None] | None = None

    def examples(self, candidate: Candidate, fold: int | None) -> list[tuple[str, Any]]:
        """The worked examples a record of ``fold`` is labeled with (None: the config's, drawn
        from all the tuning records); never a record of ``fold`` itself."""
        if candidate.shots == 0:
            return []
        if fold is None:
            keys = tuning.draw_examples(
                self.usable, self.gold.strata, candidate.shots, seed=self.seed
            )
        else:
            keys = tuning.fold_examples(
                self.folds, self.usable, self.gold.strata, candidate.shots, seed=self.seed
            )[fold]
        return [(self.gold.texts[k], self.gold.values[k]) for k in keys]

    def _call_options(self, candidate: Candidate, fold: int | None) -> CallOptions:
        options: CallOptions = {**self.options, "rendering": candidate.rendering}
        if candidate.instructions is not None:
            options["instructions"] = candidate.instructions
        if candidate.samples > 1:
            options["samples"] = candidate.samples
        if shots := self.examples(candidate, fold):
            options["examples"] = shots
        return options

    def planned_calls(self) -> int:
        """About how many model calls the search makes on an empty cache, at most: every
        record labeled once per candidate that reaches its round, one attempt each, and every
        candidate's priors (one session per fold when it has examples)."""
        sizes = tuning.round_sizes(len(self.order), len(self.candidates))
        records = tuning.planned_records(sizes, len(self.candidates))
        mean_samples = sum(c.samples for c in self.candidates) / len(self.candidates)
        priors = sum(
            self._prior_calls(c) * (self.n_folds if c.shots else 1) for c in self.candidates
        )
        return round(records * mean_samples) + priors

    def prompt_chars(self, candidate: Candidate) -> float:
        """The prompt's length without the document, times the samples: the static cost by
        which ties are broken (measured seconds vary from run to run, and are 0 when cached)."""
        options = self._call_options(candidate, 0)
        head = build_prompt(
            "",
            self.schema,
            instructions=options.get("instructions"),
            style=candidate.rendering,
            examples=options.get("examples") or (),
        )
        return float(len(head) * candidate.samples)

    async def run(self) -> TuneReport:
        """Search the space; the report and the config of the winner.

        Raises the first ExtractError that stops the model (unreachable, missing), and
        ConfigError when the budget ran out before the default was scored on any record.
        """
        try:
            return await self._search()
        finally:
            for session in self._sessions.values():
                await session.aclose()

    async def _search(self) -> TuneReport:
        sizes = tuning.round_sizes(len(self.order), len(self.candidates))
        costs = {c: self.prompt_chars(c) for c in self.candidates}
        alive = list(self.candidates)
        scored_keys: list[str] = []
        reached = False
        for number, size in enumerate(sizes, 1):
            keys = self.order[:size]
            self.progress(
                f"round {number}/{len(sizes)}: {len(alive)} candidates on {size} of"
                f" {len(self.order)} tuning records ({self.calls} model calls so far)"
            )
            try:
                for i, candidate in enumerate(alive, 1):
                    self.progress(f"  [{i}/{len(alive)}] {candidate.describe()}")
                    await self._score(candidate, keys)
            except _Spent:
                reached = True
                self.progress(f"budget of {self.budget} model calls reached: stopping the search")
                break
            scored_keys = keys
            board = [tuning.Scored(c, self._right.get(c, {}), costs[c]) for c in alive]
            if number < len(sizes):
                kept = tuning.halve(board, keys, keep_always=lambda c: c == self.candidates[0])
                alive = [s.candidate for s in kept]
        if not scored_keys:
            raise ConfigError(
                f"the budget of {self.budget} model calls ran out before a round was done;"
                f" raise --budget (a round here needs about {sizes[0] * len(self.candidates)})"
            )
        # On a cut-short round, rank only the candidates scored on every key of it.
        finalists = [c for c in alive if all(k in self._right.get(c, {}) for k in scored_keys)]
        board = [tuning.Scored(c, self._right[c], costs[c]) for c in finalists]
        ranked = tuning.rank(board, scored_keys)
        winner, default = ranked[0].candidate, self.candidates[0]
        results = {c: self._result(c, costs[c], sizes) for c in self.candidates if c in self._right}
        base = [self._right[default][k] for k in scored_keys]
        best = [self._right[winner][k] for k in scored_keys]
        difference = paired_bootstrap(base, best, seed=self.seed)
        points = [
            (conf, self._right[winner][k])
            for k, conf in self._confidence[winner].items()
            if conf is not None
        ]
        fitted = calibration(points).temperature if points else None
        config = await self._config(winner, fitted)
        ordered = sorted(results.values(), key=lambda r: (-r.rounds, -r.accuracy, r.prompt_chars))
        return TuneReport(
            results=tuple(ordered),
            winner=results[winner],
            default=results[default],
            difference=difference,
            temperature=fitted,
            tuning_records=len(self.tuning),
            calibration_records=len(self.calibration),
            folds=self.n_folds,
            round_sizes=tuple(sizes),
            calls=self.calls,
            budget_reached=reached,
            config=config,
        )

    def _result(self, candidate: Candidate, chars: float, sizes: Sequence[int]) -> Result:
        right = self._right[candidate]
        keys = [k for k in self.order if k in right]
        accuracy, low, high = tuning.bootstrap_interval([right[k] for k in keys], seed=self.seed)
        cost = self._cost.get(candidate, [])
        seconds = sum(s for s, _ in cost)
        tokens = sum(t for _, t in cost)
        return Result(
            candidate=candidate,
            records=len(keys),
            accuracy=accuracy,
            low=low,
            high=high,
            rounds=sum(len(keys) >= size for size in sizes),
            prompt_chars=chars,
            measured=len(cost),
            seconds_per_record=seconds / len(cost) if cost else None,
            tokens_per_record=tokens / len(cost) if cost else None,
        )

    async def _score(self, candidate: Candidate, keys: Sequence[str]) -> None:
        done = self._right.setdefault(candidate, {})
        todo = [k for k in keys if k not in done]
        # Without examples, every fold is labeled alike: one session serves them all.
        groups: dict[int | None, list[str]] = {}
        for key in todo:
            groups.setdefault(self.folds[key] if candidate.shots else None, []).append(key)
        for fold, members in sorted(groups.items(), key=lambda g: -1 if g[0] is None else g[0]):
            await self._label(candidate, fold, members)

    def _session(self, candidate: Candidate, fold: int | None) -> Labeling:
        key = (candidate, fold)
        if key not in self._sessions:
            # The prior is learned from the tuning texts, the same for every session, as
            # `label` learns it from the batch's first documents.
            texts = [self.gold.texts[k] for k in self.order[:WARM_UP_DOCUMENTS]]
            self._sessions[key] = Labeling(
                self.schema,
                model=self.model,
                hosts=self.hosts,
                backend=self.backend,
                cache=self.cache,
                transport=self.transport,
                concurrency=1,
                domain_prior=texts if candidate.in_domain else False,
                **self._call_options(candidate, fold),
            )
        return self._sessions[key]

    async def _label(self, candidate: Candidate, fold: int | None, keys: list[str]) -> None:
        fresh = (candidate, fold) not in self._sessions
        session = self._session(candidate, fold)
        if self._show is None:
            await self._learn_model(session)
        prior = self._prior_calls(candidate) if fresh else 0
        asks_na = fresh and not candidate.in_domain and prior > 0
        while keys:
            room = len(keys)
            if self.budget is not None:
                room = min(room, (self.budget - self.calls - prior) // candidate.samples)
                if room <= 0:
                    raise _Spent
            chunk, keys = keys[:room], keys[room:]
            before = len(session.priors)
            documents = [{"id": k, "text": self.gold.texts[k]} for k in chunk]
            records = [r async for r in session.aresults(documents)]
            self.calls += sum(p.documents for p in session.priors[before:])
            # The N/A prior is one request, made with the session's first uncached record.
            if asks_na and any(not r.cached for r in records):
                self.calls, asks_na = self.calls + 1, False
            prior = int(asks_na)
            outcomes = [outcome_of(r, i) for i, r in enumerate(records, 1)]
            gold = Gold({k: self.gold.values[k] for k in chunk})
            report = score(outcomes, gold, self.schema, tolerance=0.0)
            for result in report.records:
                self._right[candidate][result.key] = not result.wrong
                self._confidence.setdefault(candidate, {})[result.key] = result.confidence
            for record in records:
                if not record.cached:
                    self.calls += record.attempts
                    tokens = (record.usage.prompt_eval_count or 0) + (record.usage.eval_count or 0)
                    self._cost.setdefault(candidate, []).append(
                        ((record.usage.total_duration or 0) / 1e9, tokens)
                    )

    def _prior_calls(self, candidate: Candidate) -> int:
        """What a new session's prior costs: the in-domain prior's documents, or the ``N/A``
        prior's one request; nothing without choice fields to calibrate."""
        if not (self.schema.has_choices and self.options.get("calibrate", True)):
            return 0
        if not candidate.in_domain:
            return 1
        texts = min(len(self.order), WARM_UP_DOCUMENTS)
        return min(max(texts // 4, DOMAIN_MIN_DOCUMENTS), DOMAIN_DOCUMENTS)

    async def _learn_model(self, session: Labeling) -> None:
        extractor = session.extractors[0]
        try:
            digest = await extractor.model_digest()
        except ExtractError:
            digest = None
        self._show = (extractor.model, digest)

    async def _config(self, winner: Candidate, temperature: float | None) -> LabelingConfig:
        options = self._call_options(winner, None)
        if temperature is not None:
            options["confidence_temperature"] = temperature
        model, digest = self._show or (None, None)
        return LabelingConfig(
            options=options,
            prior=winner.in_domain,
            calibration_sha256=self.gold.sha256,
            calibration_ids=tuple(self.calibration),
            provenance=Provenance(
                model=model,
                digest=digest,
                backend=self.backend,
                decode_path=decode_path(options),
                extract_version=__version__,
                gold_sha256=self.gold.sha256,
            ),
        )


def _valid(schema: Schema, value: Any) -> bool:
    try:
        schema.validate(value)
    except SchemaMismatch:
        return False
    return True


def tune(gold: GoldSet, schema: Any, **kwargs: Any) -> TuneReport:
    """Run :class:`Tuner` to its report (sync). Raises what :meth:`Tuner.run` raises."""
    return asyncio.run(Tuner(gold, schema, **kwargs).run())
