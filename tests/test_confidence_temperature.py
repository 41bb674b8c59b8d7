"""A confidence temperature: fitted on labeled records by ``extract eval``, applied to every
reported confidence by ``confidence_temperature=`` / ``--confidence-temperature``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import Scripted, sentiment_reply
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from extract import ConfigError, Extractor, evaluate
from extract.batch.evaluation.metrics import MIN_FIT_RECORDS
from extract.cli import main
from extract.core.calibration import fit_temperature, scaled

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}},
    "required": ["sentiment"],
}

points = st.lists(st.tuples(st.floats(0.05, 0.95), st.booleans()), min_size=4, max_size=60).filter(
    # Not separable: some confident choices right, some wrong (else the best weight is infinite).
    lambda ps: any(r and c > 0.55 for c, r in ps) and any(not r and c > 0.55 for c, r in ps)
)


@settings(max_examples=40, deadline=None)
@given(points)
def test_the_fit_is_a_one_weight_logistic_regression(pairs: list[tuple[float, bool]]) -> None:
    x = np.array([[math.log(c / (1 - c))] for c, _ in pairs])
    y = np.array([r for _, r in pairs])
    model = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-10, max_iter=10_000)
    weight = float(model.fit(x, y).coef_[0][0])
    if not 0.01 <= weight <= 100:
        return  # outside the fitted range: the fit stops at its bounds
    assert fit_temperature(pairs) == pytest.approx(1 / weight, abs=0.006)


def test_scaling_keeps_order_and_the_midpoint() -> None:
    assert scaled(0.5, 0.2) == 0.5
    assert scaled(0.75, 0.5) == pytest.approx(0.9)
    assert scaled(0.75, 1.0) == 0.75
    assert scaled(0.6, 0.3) < scaled(0.7, 0.3) < scaled(0.7, 0.2)
    assert (scaled(0.0, 0.01), scaled(1.0, 0.01)) == (0.0, 1.0)  # no overflow at the edges
    with pytest.raises(ValueError, match="at least one"):
        fit_temperature([])


def test_an_extractor_reports_scaled_confidences(scripted: Callable[..., Scripted]) -> None:
    server = scripted()
    server.engine.script(sentiment_reply(math.log(0.6), math.log(0.2)))
    with Extractor("tiny", host=server.url, calibrate=False, confidence_temperature=0.5) as ex:
        result = ex.extract("Loved it.", SENTIMENT)
        for bad in (0, -1.0, math.inf, "0.5", True):
            wrong: Any = {"confidence_temperature": bad}
            with pytest.raises(ConfigError, match="confidence_temperature"):
                ex.extract("Loved it.", SENTIMENT, **wrong)
    assert result.confidence["$.sentiment"] == pytest.approx(0.9)
    assert math.exp(result.choices["$.sentiment"].logprobs[0]) == pytest.approx(0.75)


def test_eval_fits_it_and_label_applies_it(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    schema = tmp_path / "sentiment.json"
    schema.write_text(json.dumps(SENTIMENT))
    source = tmp_path / "in.jsonl"
    # As many records as eval fits a temperature on, at the least.
    n = MIN_FIT_RECORDS
    source.write_text("".join(json.dumps({"id": i, "text": f"tweet {i}"}) + "\n" for i in range(n)))
    gold = tmp_path / "gold.jsonl"
    # Nine of ten replies are right, each at 0.6: a temperature of 0.18 makes 0.6 read 0.9.
    gold.write_text(
        "".join(
            json.dumps({"id": i, "sentiment": "negative" if i % 10 == 0 else "positive"}) + "\n"
            for i in range(n)
        )
    )
    base = ["label", str(source), "-s", str(schema), "-m", "tiny", "--no-cache", "--no-calibrate"]
    runs = {}
    for name, extra in (("plain", []), ("scaled", ["--confidence-temperature", "0.18"])):
        server = scripted()
        server.engine.script(*[sentiment_reply(math.log(0.6), math.log(0.4))] * n)
        out = tmp_path / f"{name}.jsonl"
        result = CliRunner().invoke(main, [*base, "-o", str(out), "--host", server.url, *extra])
        assert result.exit_code == 0, result.output
        runs[name] = evaluate(out, gold, SENTIMENT)
    plain, fitted = runs["plain"].calibration, runs["scaled"].calibration
    assert plain is not None
    assert fitted is not None
    assert (plain.temperature, round(plain.ece, 3)) == (0.18, 0.3)
    assert plain.fitted_ece == pytest.approx(0.0, abs=0.01)  # 0.18 is 0.184 rounded
    assert fitted.ece == pytest.approx(0.0, abs=0.01)
    assert fitted.temperature == pytest.approx(1.0, abs=0.05)
    text = CliRunner().invoke(
        main, ["eval", str(tmp_path / "plain.jsonl"), "--gold", str(gold), "-s", str(schema)]
    )
    assert "Label with --confidence-temperature 0.18" in text.output
