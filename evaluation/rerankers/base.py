"""The one interface every reranker implements (AnswerDotAI `rerankers` style)."""
from __future__ import annotations

import importlib
from typing import Sequence


class RerankerDependencyError(ImportError):
    """A reranker family needs an optional package that is not installed."""


def require(module: str, *, install: str, purpose: str):
    """Import an optional heavy dependency, or say exactly what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RerankerDependencyError(f"{purpose} needs `{module}`: install {install}") from exc


class Reranker:
    """score(query, docs) -> one relevance score per doc (higher is better); rank() sorts by it.
    score_pairs() scores (query, doc) pairs across queries at once (pointwise models batch them)."""

    name = "reranker"
    # How many pairs an eval run hands to one `score_pairs` call (None: all of them at once, for a backend that
    # schedules its own batches, like vLLM). Progress and the run's checkpoint advance per call.
    pairs_per_call: int | None = 512

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise NotImplementedError

    def score(self, query: str, docs: Sequence[str]) -> list[float]:
        return self.score_pairs([(query, d) for d in docs])

    def rank(self, query: str, docs: Sequence[str], doc_ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        ids = list(doc_ids) if doc_ids is not None else [str(i) for i in range(len(docs))]
        scores = self.score(query, docs)
        return sorted(zip(ids, scores), key=lambda x: x[1], reverse=True)

    def close(self) -> None:
        """Free model memory (workers run one eval after another)."""
