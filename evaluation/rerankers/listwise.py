"""Listwise reranking with a sliding window (RankGPT / RankZephyr / ReasonRank style) over an
OpenAI-compatible chat endpoint: windows of 20 passages, step 10, from the bottom of the list to the top,
so a relevant passage can climb the whole list in one pass."""
from __future__ import annotations

import re
from typing import Sequence

from django.conf import settings

from .base import Reranker, require

SYSTEM = "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
_ID = re.compile(r"\[(\d+)\]|\b(\d+)\b")


def permutation_parse(text: str, n: int) -> list[int]:
    """RankGPT's parsing: the identifiers in order of appearance ("[2] > [1] > [3]"), 1-based ->
    0-based, out-of-range and repeated ones dropped, then the missing ones appended in their order."""
    # Reasoning models think first; the ranking is what follows the reasoning.
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    seen: list[int] = []
    for m in _ID.finditer(text):
        i = int(m.group(1) or m.group(2)) - 1
        if 0 <= i < n and i not in seen:
            seen.append(i)
    return seen + [i for i in range(n) if i not in seen]


def windows(n: int, *, window: int = 20, step: int = 10) -> list[tuple[int, int]]:
    """(start, end) of each window, from the last one to the first."""
    if n <= window:
        return [(0, n)]
    out, end = [], n
    while True:
        start = max(0, end - window)
        out.append((start, end))
        if start == 0:
            return out
        end -= step


def listwise_messages(query: str, passages: Sequence[str], *, max_chars: int = 1500) -> list[dict]:
    n = len(passages)
    body = "".join(f"[{i + 1}] {' '.join(p.split())[:max_chars]}\n" for i, p in enumerate(passages))
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": (
            f"I will provide you with {n} passages, each indicated by a numerical identifier []. "
            f"Rank the passages based on their relevance to the search query: {query}.\n\n{body}\n"
            f"Search Query: {query}.\nRank the {n} passages above based on their relevance to the search query. "
            "All the passages should be included and listed using identifiers, in descending order of relevance. "
            "The output format should be [] > [], e.g., [2] > [1]. Only respond with the ranking results, "
            "do not say any word or explain.")},
    ]


class ListwiseReranker(Reranker):
    """Scores are positions turned into descending numbers (n - rank), so the interface stays score-based."""

    name = "listwise"

    def __init__(self, *, model: str, base_url: str = "", api_key: str = "", client=None, window: int = 20, step: int = 10,
                 max_tokens: int = 4096, temperature: float = 0.0, timeout: float = 120.0, max_retries: int = 4):
        if client is None:
            openai = require("openai", install="openai (requirements.txt)", purpose="the listwise reranker")
            client = openai.OpenAI(base_url=base_url or None, api_key=api_key or "sk-local", timeout=timeout,
                                   max_retries=max_retries)
        self.client, self.model = client, model
        self.window, self.step, self.max_tokens, self.temperature = window, step, max_tokens, temperature
        self.calls = 0

    @classmethod
    def from_config(cls, *, path: str, base_model: str, config: dict) -> "ListwiseReranker":
        return cls(
            model=config.get("model") or path or settings.LIMRANK_REASONER_MODEL,
            base_url=config.get("base_url") or settings.LIMRANK_REASONER_BASE_URL,
            api_key=settings.LIMRANK_REASONER_API_KEY,  # keys stay in the environment, never in model rows
            window=int(config.get("window", 20)), step=int(config.get("step", 10)),
            timeout=settings.LIMRANK_LLM_TIMEOUT, max_retries=settings.LIMRANK_LLM_MAX_RETRIES,
        )

    def _permute(self, query: str, passages: Sequence[str]) -> list[int]:
        resp = self.client.chat.completions.create(model=self.model, messages=listwise_messages(query, passages),
                                                   temperature=self.temperature, max_tokens=self.max_tokens)
        self.calls += 1
        usage = getattr(resp, "usage", None)  # OpenAI-compatible servers report the tokens they billed
        self.cost.add(calls=1, tokens_in=getattr(usage, "prompt_tokens", 0) or 0,
                      tokens_out=getattr(usage, "completion_tokens", 0) or 0)
        return permutation_parse(resp.choices[0].message.content or "", len(passages))

    def order(self, query: str, docs: Sequence[str]) -> list[int]:
        """Indices of `docs` (given in first-stage order) in the reranked order."""
        order = list(range(len(docs)))
        for start, end in windows(len(docs), window=self.window, step=self.step):
            current = order[start:end]
            perm = self._permute(query, [docs[i] for i in current])
            order[start:end] = [current[p] for p in perm]
        return order

    def score(self, query: str, docs: Sequence[str]) -> list[float]:
        order = self.order(query, docs)
        scores = [0.0] * len(docs)
        for rank, i in enumerate(order):
            scores[i] = float(len(docs) - rank)
        return scores

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise TypeError("a listwise reranker ranks a query's whole list: call score(query, docs)")
