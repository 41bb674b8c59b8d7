"""The llama.cpp engine's generation loop: Ollama's sampling defaults, stop strings held back
until they are known not to match, and per-token log-probabilities when asked for."""

from __future__ import annotations

import codecs
import contextlib
import random
import threading
import time
from collections.abc import Generator
from typing import Any

from . import _logprobs
from ._engine import Disconnect, Event, Final, Job, LogprobEntry

# Ollama's sampling defaults.
_SAMPLING_DEFAULTS = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}
_SAMPLING_NAMES = {"temperature": "temp"}


def decode(
    llm: Any,
    job: Job,
    prompt: list[int],
    tokens: list[int],
    grammar: Any,
    stop: threading.Event,
    started: int,
    loaded: int,
) -> Generator[Event, None, None]:
    """Generate from ``tokens`` (``prompt`` fitted to the context): the reply's text as it
    comes, then its :class:`Final`.

    Raises:
        Disconnect: ``stop`` was set (the server is stopping).
    """
    import llama_cpp

    options = job.options
    budget = llm.n_ctx() - len(tokens)
    num_predict = int(options.get("num_predict", -1))
    max_tokens = min(num_predict, budget) if num_predict > 0 else budget
    seed = int(options.get("seed", -1))
    llm.set_seed(seed if seed >= 0 else random.randrange(2**31))
    sampling = {
        _SAMPLING_NAMES.get(k, k): options.get(k, default)
        for k, default in _SAMPLING_DEFAULTS.items()
    }
    stops = [s for s in options.get("stop", []) if s]
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    ledger = _logprobs.Ledger() if job.logprobs else None
    completion: list[int] = []
    held, first, stopped, ended_by_model = "", 0, False, False
    with contextlib.closing(llm.generate(tokens, grammar=grammar, **sampling)) as sampled:
        for token in sampled:
            first = first or time.perf_counter_ns()
            if stop.is_set():
                raise Disconnect
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                ended_by_model = True
                break
            completion.append(token)
            piece = utf8.decode(llm.detokenize([token]))
            if ledger is not None:
                ledger.token(len(piece), _token_logprobs(llm, token, job.top_logprobs))
            text, held, stopped = _release(held + piece, stops)
            if text:
                yield text if ledger is None else ledger.piece(text)
            if stopped or len(completion) >= max_tokens:
                break
    if not stopped:
        text, _, stopped = _release(held + utf8.decode(b"", final=True), stops, final=True)
        if text:
            yield text if ledger is None else ledger.piece(text)
    ended = time.perf_counter_ns()
    first = first or ended
    metrics = {
        "total_duration": ended - started,
        "load_duration": loaded - started,
        "prompt_eval_count": len(tokens),
        "prompt_eval_duration": first - loaded,
        "eval_count": len(completion),
        "eval_duration": ended - first,
    }
    reason = "stop" if stopped or ended_by_model else "length"
    # Ollama's context is the whole prompt, as sent, and the reply: not the part that fit.
    context = [*prompt, *completion]
    yield Final(reason, "", metrics, context, None if ledger is None else ledger.entries)


def _token_logprobs(llm: Any, token: int, top_n: int) -> LogprobEntry:
    """The entry of a token just sampled: the context's latest logits are the ones it was
    drawn from, since the sampler reads them in place and the token is not yet evaluated."""
    import llama_cpp
    import numpy as np

    raw = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    logits = np.ctypeslib.as_array(raw, shape=(llm.n_vocab(),))

    def spell(t: int) -> bytes:
        return bytes(llm.detokenize([t], special=True))

    return _logprobs.from_logits(logits, token, top_n, spell)


def _release(held: str, stops: list[str], final: bool = False) -> tuple[str, str, bool]:
    """Split text into what may be sent now and what to hold back; True when a stop matched.

    Text that could be the start of a stop string is held until it is known not to be one.

    >>> _release("ab<|e", ["<|end|>"])
    ('ab', '<|e', False)
    >>> _release("ab<|end|>cd", ["<|end|>"])
    ('ab', '', True)
    """
    hits = [i for i in (held.find(s) for s in stops) if i >= 0]
    if hits:
        return held[: min(hits)], "", True
    if final:
        return held, "", False
    keep = max(
        (
            n
            for s in stops
            for n in range(min(len(s) - 1, len(held)), 0, -1)
            if held.endswith(s[:n])
        ),
        default=0,
    )
    return held[: len(held) - keep], held[len(held) - keep :], False
