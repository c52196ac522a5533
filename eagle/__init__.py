"""EAGLE attribution for multimodal LLMs: which image regions drive a generated token, and how
much the token rests on visual evidence rather than language priors.

This package never imports Prefect, DuckDB or a serving client at import time.
"""

from eagle.explanation import Explanation
from eagle.method import Eagle, score_order
from eagle.regions import GridSegmenter, Segmenter, SlicoSegmenter
from eagle.search import BidirectionalLazySearch, EfficientSearch, ExactSearch, LazySearch
from eagle.types import Backend, MaskedImages, MaskedScorer, Scorer, ScoreRequest

__all__ = [
    "Backend",
    "BidirectionalLazySearch",
    "Eagle",
    "EfficientSearch",
    "ExactSearch",
    "Explanation",
    "LazySearch",
    "MaskedImages",
    "MaskedScorer",
    "GridSegmenter",
    "ScoreRequest",
    "Scorer",
    "Segmenter",
    "SlicoSegmenter",
    "score_order",
]
