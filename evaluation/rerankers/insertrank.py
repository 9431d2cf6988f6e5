"""InsertRank (Seetharaman et al., 2025, arXiv 2506.14086): listwise reranking with each passage's first-stage
(BM25) score written under it in the prompt.

The InsertRank authors' code was not found; the prompt is RankLLM's InsertRank template
(castorini/rank_llm `insert_rank_template.yaml`, rendered as its `SingleTurnListwiseInferenceHandler` does:
prefix, one "[rank] passage / BM25 score: x.xxx" block per passage, suffix). The score shown is the passage's
own first-stage score wherever the window has moved it (RankLLM's `receive_permutation` leaves scores with
positions; the paper gives each document its BM25 score). Windows and merge: the shared sliding window."""
from __future__ import annotations

from typing import Sequence

from .listwise import ListwiseReranker, permutation_parse, replace_number

SYSTEM = "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query"


def insertrank_messages(query: str, passages: Sequence[str], scores: Sequence[float], *, max_words: int = 300) -> list[dict]:
    if len(scores) != len(passages):
        raise ValueError(f"InsertRank needs one first-stage score per passage ({len(scores)} for {len(passages)})")
    query = replace_number(query)
    num = len(passages)
    user = (f"I will provide you with {num} passages, each indicated by a numerical identifier []. I will also "
            f"provide the BM25 scores from a lexical retrieval system.\n\nRank the passages based on their relevance "
            f"to the search query: {query}.\n")
    for rank, (passage, score) in enumerate(zip(passages, scores), 1):
        content = replace_number(" ".join(passage.split()[: int(max_words)]))
        user += f"[{rank}] {content}\nBM25 score: {float(score):.3f}\n"
    user += (f"Search Query: {query}.\nRerank the above {num} passages based on their relevance to the query. "
             "Consider both the document content and the BM25 scores as signals for relevance. All the passages "
             "should be included and listed using identifiers, in descending order of relevance. The output format "
             "should be [] > [], e.g., [2] > [1]. Return the ranking as a list of numbers from 1 to "
             f"{num}, most relevant first. Answer concisely and directly and only respond with the ranking results, "
             "do not say any word or explain.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


class InsertRankReranker(ListwiseReranker):
    name = "insertrank"

    def __init__(self, *, max_words: int = 300, **kw):
        super().__init__(max_words=max_words, **kw)

    def score(self, query, docs, first_stage_scores=None):
        if first_stage_scores is None:
            raise TypeError("InsertRank puts the first-stage scores in its prompt: pass first_stage_scores")
        return super().score(query, docs, first_stage_scores)

    def messages(self, query, passages, scores=None):
        return insertrank_messages(query, passages, scores or [], max_words=self.max_words)

    def parse(self, text: str, n: int) -> list[int]:
        return permutation_parse(text, n)  # RankLLM's `_clean_response`: after </think>, every digit run
