"""Evaluation of trained vectors: public benchmarks, stored scores, side-by-side comparison, reports."""

from __future__ import annotations

from ..cluster import public_functions
from .benchmarks import BENCHMARKS, analogies, compact, evaluate, sentiment, word_pairs
from .scoring import compare, evaluate_model

__all__ = ["BENCHMARKS", "analogies", "compact", "evaluate", "sentiment", "word_pairs", "evaluate_model", "compare"]

public_functions(globals(), __all__)  # called from outside nlpzk, they raise only NlpzkError
