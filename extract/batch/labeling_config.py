"""The labeling config file: the chosen labeling options, the guaranteed thresholds, and what
they were chosen on, in one JSON document.

``extract tune`` writes the options, ``extract eval --target-accuracy`` the thresholds;
``extract label --config``, ``extract eval --config`` and ``Labeling(..., config=...)`` read
it. Every key is optional but the version::

    {
      "extract_labeling_config": 1,
      "options": {
        "instructions": "Classify the support ticket.",   # the task sentence; null: default
        "examples": [{"text": "...", "value": {...}}],     # worked examples for the prompt
        "rendering": "shape",                              # how the schema is shown
        "prior": "in-domain",                              # or "n/a" (see Labeling)
        "confidence_temperature": 0.8,
        "samples": 1,
        "calibrate": true
      },
      "thresholds": {                                      # from extract eval --target-accuracy
        "record": {"threshold": 0.93, "target_accuracy": 0.95, "delta": 0.05,
                   "coverage": 0.62, "accuracy": 0.98, "lower_bound": 0.951,
                   "gold_records": 200, "accepted": 124},
        "fields": {"$.category": {...the same keys...}}
      },
      "calibration": {                                     # the gold the thresholds were set on
        "gold_sha256": "...", "ids": ["17", "42"] | null,
        "confidences": [0.41, 0.55, ...]                   # its records' least confidences
      },
      "provenance": {                                      # what the options were tuned with
        "model": "smollm2:135m", "digest": "sha256...", "backend": "ollama",
        "decode_path": "generate;format=auto;confidence=logprobs;calibrated",
        "extract_version": "0.1.0", "scoring_version": 1, "gold_sha256": "..."
      }
    }

``calibration.ids``, when set by tune, names the gold records held out of tuning; eval sets
thresholds on those alone when given the tuning gold. Keys this version does not know (a later
version's cascade ``tiers``, say) are kept as they are when the file is rewritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..client.backends import BACKENDS
from ..client.calls import CallOptions
from ..core.confidence import SCORING_VERSION
from ..errors import ConfigError

FORMAT_KEY = "extract_labeling_config"
FORMAT_VERSION = 1
BACKEND = "ollama"  # what a config that names none was tuned on
_OPTION_KEYS = ("instructions", "rendering", "confidence_temperature", "samples", "calibrate")
_PRIORS = {"in-domain": True, "n/a": False}
Source = str | os.PathLike[str]


@dataclasses.dataclass(frozen=True, slots=True)
class Threshold:
    """A guaranteed threshold and the numbers that back it (see ``core.guarantee``)."""

    threshold: float
    target_accuracy: float
    delta: float
    coverage: float
    accuracy: float
    lower_bound: float
    gold_records: int
    accepted: int


@dataclasses.dataclass(frozen=True, slots=True)
class Provenance:
    """What the options (and thresholds) were chosen with; None where unknown."""

    model: str | None = None
    digest: str | None = None
    backend: str = BACKEND
    decode_path: str | None = None
    extract_version: str = __version__
    scoring_version: int = SCORING_VERSION
    gold_sha256: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class LabelingConfig:
    """One labeling config file, read (:meth:`load`) or to write (:meth:`save`)."""

    options: CallOptions = dataclasses.field(default_factory=lambda: CallOptions())
    prior: bool | None = None
    record_threshold: Threshold | None = None
    field_thresholds: Mapping[str, Threshold] = dataclasses.field(default_factory=dict)
    calibration_sha256: str | None = None
    calibration_ids: tuple[str, ...] | None = None
    calibration_confidences: tuple[float, ...] = ()
    provenance: Provenance | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, source: Source) -> LabelingConfig:
        """Read a config file. Raises ConfigError naming the file and what is wrong."""
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ConfigError(f"config {path} is not JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"config {path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any) -> LabelingConfig:
        """A config from its JSON form. Raises ConfigError for anything it cannot use."""
        if not isinstance(data, dict) or data.get(FORMAT_KEY) != FORMAT_VERSION:
            raise ConfigError(
                f'not a labeling config (it needs "{FORMAT_KEY}": {FORMAT_VERSION}); '
                "write one with `extract tune` or `extract eval --target-accuracy --config`"
            )
        options, prior = _options(_object(data, "options"))
        thresholds = _object(data, "thresholds")
        record = thresholds.get("record")
        fields = _object(thresholds, "fields", where="thresholds.fields")
        calibration = _object(data, "calibration")
        ids = calibration.get("ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise ConfigError("calibration.ids must be a list of ids (as text), or null")
        confidences = calibration.get("confidences", [])
        if not isinstance(confidences, list) or not all(_rate(c) for c in confidences):
            raise ConfigError("calibration.confidences must be a list of numbers in 0..1")
        known = {FORMAT_KEY, "options", "thresholds", "calibration", "provenance"}
        return cls(
            options=options,
            prior=prior,
            record_threshold=None if record is None else _threshold(record, "record"),
            field_thresholds={p: _threshold(t, p) for p, t in fields.items()},
            calibration_sha256=_text(calibration, "gold_sha256"),
            calibration_ids=None if ids is None else tuple(ids),
            calibration_confidences=tuple(float(c) for c in confidences),
            provenance=_provenance(data["provenance"]) if "provenance" in data else None,
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form :meth:`from_dict` reads back."""
        options: dict[str, Any] = {k: self.options[k] for k in _OPTION_KEYS if k in self.options}  # type: ignore[literal-required]
        if (examples := self.options.get("examples")) is not None:
            options["examples"] = [{"text": t, "value": v} for t, v in examples]
        if self.prior is not None:
            options["prior"] = "in-domain" if self.prior else "n/a"
        data: dict[str, Any] = {FORMAT_KEY: FORMAT_VERSION, "options": options}
        if self.record_threshold is not None or self.field_thresholds:
            thresholds: dict[str, Any] = {}
            if self.record_threshold is not None:
                thresholds["record"] = dataclasses.asdict(self.record_threshold)
            if self.field_thresholds:
                thresholds["fields"] = {
                    p: dataclasses.asdict(t) for p, t in self.field_thresholds.items()
                }
            data["thresholds"] = thresholds
        calibration: dict[str, Any] = {}
        if self.calibration_sha256 is not None:
            calibration["gold_sha256"] = self.calibration_sha256
        if self.calibration_ids is not None:
            calibration["ids"] = list(self.calibration_ids)
        if self.calibration_confidences:
            calibration["confidences"] = list(self.calibration_confidences)
        if calibration:
            data["calibration"] = calibration
        if self.provenance is not None:
            data["provenance"] = dataclasses.asdict(self.provenance)
        return {**self.extra, **data}

    def save(self, target: Source) -> None:
        """Write the file (to a temporary file first, then renamed over it).

        Raises ConfigError when it cannot be written."""
        path = Path(target)
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            temporary.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            raise ConfigError(f"cannot write config {path}: {exc.strerror or exc}") from None

    def call_options(self, given: CallOptions) -> tuple[CallOptions, list[str]]:
        """The config's options under ``given`` (which win), and the names ``given`` changed
        from the config's values (thresholds set under the config's may not hold then)."""
        merged: CallOptions = {**self.options, **given}
        changed = [
            name
            for name in self.options
            if name in given and given[name] != self.options[name]  # type: ignore[literal-required]
        ]
        return merged, sorted(changed)


def decode_path(options: CallOptions) -> str:
    """How a record's value and confidence are read under ``options``: what changes the
    meaning of a confidence, and so of a threshold set on it.

    >>> decode_path({})
    'generate;format=auto;confidence=logprobs;calibrated'
    >>> decode_path({"format": None, "samples": 5, "calibrate": False})
    'generate;format=none;confidence=samples;raw'
    """
    fmt = options.get("format", "auto")
    source = "samples" if options.get("samples", 1) > 1 else "logprobs"
    calibrated = "calibrated" if options.get("calibrate", True) else "raw"
    return f"generate;format={'none' if fmt is None else fmt};confidence={source};{calibrated}"


def provenance_mismatch(
    recorded: Provenance,
    *,
    model: str,
    digest: str | None,
    options: CallOptions,
    backend: str = BACKEND,
) -> list[str]:
    """What differs between the recorded provenance and this run; empty when nothing does.

    The model is compared by digest when both digests are known, else by name; the backend
    (the server's API) too, since another server scores the same model differently.
    """
    problems: list[str] = []
    if recorded.backend != backend:
        problems.append(f"backend {backend!r} is not the tuned {recorded.backend!r}")
    if recorded.digest is not None and digest is not None:
        if recorded.digest != digest:
            problems.append(
                f"model digest {_short(digest)} (of {model!r}) is not the tuned "
                f"{_short(recorded.digest)} (of {recorded.model!r})"
            )
    elif recorded.model is not None and recorded.model != model:
        problems.append(f"model {model!r} is not the tuned {recorded.model!r}")
    if recorded.scoring_version != SCORING_VERSION:
        problems.append(
            f"confidences are scored by version {SCORING_VERSION} of extract's scoring, the "
            f"config by version {recorded.scoring_version} (extract {recorded.extract_version})"
        )
    path = decode_path(options)
    if recorded.decode_path is not None and recorded.decode_path != path:
        problems.append(f"decode path {path!r} is not the tuned {recorded.decode_path!r}")
    return problems


def mismatch_message(problems: Sequence[str]) -> str:
    return (
        "the labeling config was tuned under other conditions, so its thresholds would not "
        "hold: " + "; ".join(problems) + ". Tune again (or set thresholds again with "
        "`extract eval --target-accuracy`), or pass --force (force=True) to label anyway"
    )


def file_sha256(source: Source) -> str:
    """The SHA-256 of a file's bytes. Raises ConfigError when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def _object(data: Mapping[str, Any], key: str, *, where: str | None = None) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where or key} must be an object")
    return value


def _rate(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{key} must be text")
    return value


def _options(raw: dict[str, Any]) -> tuple[CallOptions, bool | None]:
    unknown = set(raw) - {*_OPTION_KEYS, "examples", "prior"}
    if unknown:
        raise ConfigError(
            f"options: unknown {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted((*_OPTION_KEYS, 'examples', 'prior')))})"
        )
    options: dict[str, Any] = {k: raw[k] for k in _OPTION_KEYS if k in raw}
    checks: dict[str, tuple[type | tuple[type, ...], str]] = {
        "instructions": ((str, type(None)), "text or null"),
        "rendering": (str, '"shape" or "schema"'),
        "confidence_temperature": ((int, float), "a positive number"),
        "samples": (int, "a number of samples (≥ 1)"),
        "calibrate": (bool, "true or false"),
    }
    for name, (kind, wanted) in checks.items():
        if name in options and (
            not isinstance(options[name], kind)
            or (isinstance(options[name], bool) and name != "calibrate")
        ):
            raise ConfigError(f"options.{name} must be {wanted}, not {options[name]!r}")
    if options.get("rendering", "shape") not in ("shape", "schema"):
        raise ConfigError(
            f'options.rendering must be "shape" or "schema", not {options["rendering"]!r}'
        )
    if "examples" in raw:
        examples = raw["examples"]
        if not isinstance(examples, list) or not all(
            isinstance(e, dict) and isinstance(e.get("text"), str) and "value" in e
            for e in examples
        ):
            raise ConfigError('options.examples must be a list of {"text", "value"} objects')
        options["examples"] = [(e["text"], e["value"]) for e in examples]
    prior = raw.get("prior")
    if prior is not None and prior not in _PRIORS:
        raise ConfigError(f'options.prior must be "in-domain" or "n/a", not {prior!r}')
    return options, None if prior is None else _PRIORS[prior]  # type: ignore[return-value]


def _threshold(raw: Any, where: str) -> Threshold:
    names = [f.name for f in dataclasses.fields(Threshold)]
    if not isinstance(raw, dict) or set(names) - set(raw):
        raise ConfigError(f"thresholds {where}: needs {', '.join(names)}")
    counts = ("gold_records", "accepted")
    for name in names:
        value = raw[name]
        good = isinstance(value, int) and value >= 0 if name in counts else _rate(value)
        if not good or isinstance(value, bool):
            raise ConfigError(f"thresholds {where}: {name}={value!r} is out of range")
    return Threshold(**{name: raw[name] for name in names})


def _provenance(raw: Any) -> Provenance:
    if not isinstance(raw, dict):
        raise ConfigError("provenance must be an object")
    fields = {f.name: f for f in dataclasses.fields(Provenance)}
    kept = {k: v for k, v in raw.items() if k in fields}
    for name, value in kept.items():
        wanted: type = int if name == "scoring_version" else str
        if value is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
            raise ConfigError(f"provenance.{name}={value!r} must be {wanted.__name__}")
    if "backend" in kept and kept["backend"] not in BACKENDS:
        raise ConfigError(
            f"provenance.backend {kept['backend']!r} is not one of {', '.join(BACKENDS)}"
        )
    return Provenance(**kept)
