"""llama.cpp's own grammar engine, asked whether a grammar accepts a whole text.

The vocabulary of the bundled SmolLM2 GGUF is loaded alone (no weights, no compute), and a text
is fed to llama.cpp's grammar sampler token by token: each token must survive the sampler's
filter, and at the end the end-of-generation token must too (the grammar is complete). A token
is accepted only after the filter let it through, since accepting a forbidden one aborts.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import llama_cpp

from extract.server import default_model_path


class GrammarEngine:
    """The grammar sampler of llama-cpp-python's bundled llama.cpp on a vocabulary."""

    def __init__(self) -> None:
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(
            str(default_model_path()).encode(), params
        )
        if not self.model:
            raise RuntimeError("the bundled GGUF's vocabulary did not load")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.end = llama_cpp.llama_vocab_eos(self.vocab)

    def parses(self, grammar: str) -> bool:
        """Whether llama.cpp's grammar parser takes ``grammar`` (root rule ``root``)."""
        sampler = llama_cpp.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
        if not sampler:
            return False
        llama_cpp.llama_sampler_free(sampler)
        return True

    def accepts(self, grammar: str, text: str) -> bool:
        """Whether ``grammar`` lets a model write exactly ``text`` and stop there.

        Raises:
            ValueError: llama.cpp cannot parse the grammar.
        """
        sampler = llama_cpp.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
        if not sampler:
            raise ValueError(f"llama.cpp cannot parse the grammar:\n{grammar}")
        try:
            for token in [*self.tokens(text), self.end]:
                if not self._allowed(sampler, token):
                    return False
                if token != self.end:
                    llama_cpp.llama_sampler_accept(sampler, token)
            return True
        finally:
            llama_cpp.llama_sampler_free(sampler)

    def tokens(self, text: str) -> list[int]:
        data = text.encode()
        buffer = (llama_cpp.llama_token * (len(data) + 8))()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buffer, len(buffer), False, False)
        if n < 0:
            raise RuntimeError(f"tokenizing {text!r} failed")
        return list(buffer[:n])

    @staticmethod
    def _allowed(sampler: Any, token: int) -> bool:
        candidates = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
        array = llama_cpp.llama_token_data_array(candidates, 1, -1, False)
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
        return bool(candidates[0].logit != float("-inf"))


@functools.cache
def engine() -> GrammarEngine:
    """One engine per test session (loading the vocabulary takes a moment)."""
    return GrammarEngine()
