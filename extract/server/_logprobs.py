"""Token log-probabilities as Ollama (0.12.11+) puts them on its reply lines.

What Ollama sends, checked in its source (api/types.go ``Logprob`` and ``TokenLogprob``,
server/logprob.go ``toAPILogprobs``, server/routes.go, runner/llamarunner and
runner/ollamarunner ``calculateLogprobs``, runner/common ``CalculateLogprobs``):

- Only when the request says ``logprobs: true``; ``top_logprobs`` (0-20, default 0) adds that
  many alternatives to each entry. Outside 0-20 the request fails with 400
  ``top_logprobs must be between 0 and 20``, before the model is looked up.
- ``logprobs`` is a top-level list on a line (for /api/chat too, beside ``message``), one entry
  per generated token: ``{"token", "logprob", "bytes", "top_logprobs"}``. ``token`` is the
  token's text as the model's vocabulary spells it (special tokens included), ``logprob`` its
  natural-log probability, ``bytes`` the token's bytes as a list of integers (left out when
  the token is empty). ``top_logprobs`` holds the most likely tokens at that place, most
  likely first, each ``{"token", "logprob", "bytes"}``; it is left out when not asked for.
  Empty lists are left off the line altogether (Go's ``omitempty``).
- The probabilities are a log-softmax of the model's raw logits over the whole vocabulary,
  taken before any sampler: no temperature, no top-k/top-p, no repeat penalty, no grammar.
  So under a ``format`` grammar the chosen token may be missing from its own top list, and
  alternatives the grammar forbids do appear.
- The end-of-generation token gets no entry (it is checked before the entry is made). Tokens
  held back for a possible stop string travel with the text that finally shows them; tokens
  a stop string cuts away lose their entries.
- Streamed, each line carries the entries of the tokens whose text it carries; the done line
  carries none. Not streamed, the one reply carries every entry, joined in order.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

from ._engine import LogprobEntry, Piece

MAX_TOP_LOGPROBS = 20


def entry(piece: bytes, logprob: float, top: Sequence[LogprobEntry] | None = None) -> LogprobEntry:
    """One token's wire entry; ``top`` None leaves ``top_logprobs`` out.

    >>> entry(b"hi", -0.5)
    {'token': 'hi', 'logprob': -0.5, 'bytes': [104, 105]}
    >>> entry(b"", -1.0, [])
    {'token': '', 'logprob': -1.0}
    """
    line: dict[str, Any] = {"token": piece.decode("utf-8", errors="replace"), "logprob": logprob}
    if piece:
        line["bytes"] = list(piece)
    if top:
        line["top_logprobs"] = list(top)
    return line


def from_logits(
    logits: Any, chosen: int, top_n: int, spell: Callable[[int], bytes]
) -> LogprobEntry:
    """The entry of token ``chosen`` from the raw ``logits`` it was sampled from (a numpy
    vector over the vocabulary), with the ``top_n`` most likely tokens; ``spell`` gives a
    token's bytes."""
    import numpy as np

    values = np.asarray(logits, dtype=np.float64)
    shifted = values - values.max()
    logprobs = shifted - np.log(np.exp(shifted).sum())
    top, top_n = None, min(top_n, len(logprobs))
    if top_n > 0:
        best = np.argpartition(-logprobs, top_n - 1)[:top_n]
        ranked = best[np.argsort(-logprobs[best], kind="stable")]
        top = [entry(spell(int(t)), float(logprobs[t])) for t in ranked]
    return entry(spell(chosen), float(logprobs[chosen]), top)


class Ledger:
    """Hands each token's entry to the first piece of text that shows the token.

    Text reaches the client later than tokens are made (held back for stop strings and
    unfinished UTF-8), and pieces are always a prefix of the text tokens made, so a token
    is shown once the text sent so far reaches past where the token's text starts.

    >>> ledger = Ledger()
    >>> ledger.token(2, {"token": "ab"}); ledger.token(0, {"token": "?"})
    >>> ledger.piece("a").logprobs, ledger.piece("b").logprobs
    (({'token': 'ab'},), ())
    """

    def __init__(self) -> None:
        self._pending: collections.deque[tuple[int, LogprobEntry]] = collections.deque()
        self._made = 0
        self._sent = 0
        self.entries: list[LogprobEntry] = []

    def token(self, text_length: int, line: LogprobEntry) -> None:
        """Record a token whose text (once decoded) is ``text_length`` characters."""
        self._pending.append((self._made, line))
        self._made += text_length

    def piece(self, text: str) -> Piece:
        """``text`` about to be sent, with the entries of every token it shows first."""
        self._sent += len(text)
        shown: list[LogprobEntry] = []
        while self._pending and self._pending[0][0] < self._sent:
            shown.append(self._pending.popleft()[1])
        self.entries.extend(shown)
        return Piece(text, shown)
