"""How good are the labels: a finished run's records scored against gold, and the review loop.

``evaluate`` returns an ``EvalReport``; the ``extract eval`` and ``extract review`` commands
print, compare and export it.
"""

from .evaluate import evaluate
from .report import EvalReport

__all__ = ["EvalReport", "evaluate"]
