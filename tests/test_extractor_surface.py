"""The extractors' public surface is the documented one: a new public name is a decision, made
here, like a name added to ``extract.__all__``."""

from __future__ import annotations

from extract import AsyncExtractor, Extractor

SHARED = {
    "model",
    "host",
    "settings",
    "priors",
    "cache_key",
    "check_model",
    "model_digest",
    "extract",
}
SYNC = SHARED | {"close", "preview", "learn_prior", "stream"}
ASYNC = SHARED | {"aclose", "learn_prior", "stream"}


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_the_sync_extractor_shows_only_its_documented_names() -> None:
    assert _public(Extractor) == SYNC


def test_the_async_extractor_shows_only_its_documented_names() -> None:
    assert _public(AsyncExtractor) == ASYNC


def test_an_instance_adds_no_public_attribute() -> None:
    with Extractor("m", host="http://127.0.0.1:9") as ex:
        assert _public(type(ex)) == {n for n in vars(ex) if not n.startswith("_")} | SYNC
        assert ex.host == "http://127.0.0.1:9"
        assert ex.model == "m"
