"""Listwise reranking with a sliding window: the ONE window/merge implementation that RankGPT, FIRST, ReasonRank
and InsertRank share (`SlidingWindowReranker`), and the one OpenAI-compatible chat call they make (`ChatBackend`).

Windows of 20 passages, step 10, from the bottom of the list to the top (RankLLM's `sliding_windows`, which
FIRST and ReasonRank both ship), so a relevant passage can climb the whole list in one pass. Each window's
permutation is applied to the passages that are in that window at that moment, including the ones an earlier
window moved there; passages the model leaves out keep their order after the ones it names."""
from __future__ import annotations

import re
from typing import Sequence

from django.conf import settings

from .base import CostCounter, Reranker, require

SYSTEM = "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."


def permutation_parse(text: str, n: int) -> list[int]:
    """RankGPT's `clean_response` + `receive_permutation`: every run of digits is an identifier, in order of
    appearance ("[2] > [1] > [3]"), 1-based -> 0-based, then `identifiers_complete`. As RankLLM does, a reasoning
    model's ranking is what follows `</think>`."""
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    digits = "".join(c if c.isdigit() else " " for c in text).split()
    return identifiers_complete([int(x) - 1 for x in digits], n)


def identifiers_complete(picked: Sequence[int], n: int) -> list[int]:
    """RankLLM's `receive_permutation`: duplicates and out-of-range indices dropped, the missing ones appended in
    their original order, so every window yields a full permutation whatever the model said."""
    seen: list[int] = []
    for i in picked:
        if 0 <= i < n and i not in seen:
            seen.append(i)
    return seen + [i for i in range(n) if i not in seen]


def replace_number(text: str) -> str:
    """RankLLM's `_replace_number`: "[3]" inside a passage becomes "(3)", so no passage can fake an identifier."""
    return re.sub(r"\[(\d+)\]", r"(\1)", text)


def fix_text(text: str) -> str:
    """ftfy's `fix_text`, which RankLLM-based rerankers (FIRST, ReasonRank) apply to every prompt."""
    ftfy = require("ftfy", install="ftfy (requirements.txt)", purpose="the listwise prompts")
    return ftfy.fix_text(text)


def windows(n: int, *, window: int = 20, step: int = 10) -> list[tuple[int, int]]:
    """(start, end) of each window, from the last one to the first (RankLLM's loop: the last window may be
    smaller than `window`; none repeats a covered head, e.g. 0-20 is not followed by 0-10)."""
    if n <= window:
        return [(0, n)] if n else []
    out, end = [], n
    while True:
        start = max(0, end - window)
        out.append((start, end))
        if start == 0:
            return out
        end -= step


class ChatBackend:
    """One OpenAI-compatible chat completion per model call, counted in the reranker's cost (calls, tokens in
    and out from the response's usage). Reasoning sent apart (`reasoning_content`, DeepSeek / vLLM style) is put
    back in front of the answer as `<think>…</think>`, so each family parses the completion as its authors did."""

    def __init__(self, *, model: str, cost: CostCounter | None = None, base_url: str = "", api_key: str = "", client=None,
                 max_tokens: int = 4096, temperature: float = 0.0, timeout: float = 120.0, max_retries: int = 4):
        if client is None:
            openai = require("openai", install="openai (requirements.txt)", purpose="an OpenAI-compatible reranker")
            client = openai.OpenAI(base_url=base_url or None, api_key=api_key or "sk-local", timeout=timeout,
                                   max_retries=max_retries)
        self.client, self.model, self.cost = client, model, cost or CostCounter()
        self.max_tokens, self.temperature = max_tokens, temperature

    @classmethod
    def from_config(cls, *, path: str, config: dict, max_tokens: int = 4096) -> "ChatBackend":
        return cls(
            model=config.get("model") or path or settings.LIMRANK_REASONER_MODEL,
            base_url=config.get("base_url") or settings.LIMRANK_REASONER_BASE_URL,
            api_key=settings.LIMRANK_REASONER_API_KEY,  # keys stay in the environment, never in model rows
            max_tokens=int(config.get("max_tokens", max_tokens)), temperature=float(config.get("temperature", 0.0)),
            timeout=settings.LIMRANK_LLM_TIMEOUT, max_retries=settings.LIMRANK_LLM_MAX_RETRIES,
        )

    def complete(self, messages: list[dict]) -> str:
        resp = self.client.chat.completions.create(model=self.model, messages=messages,
                                                   temperature=self.temperature, max_tokens=self.max_tokens)
        message = resp.choices[0].message
        text = message.content or ""
        reasoning = getattr(message, "reasoning_content", None) or (getattr(message, "model_extra", None) or {}).get("reasoning_content")
        if reasoning and "<think>" not in text:
            text = f"<think>{reasoning}</think>{text}"
        usage = getattr(resp, "usage", None)
        self.cost.add(tokens_in=getattr(usage, "prompt_tokens", 0) or 0,
                      tokens_out=getattr(usage, "completion_tokens", 0) or 0)
        return text


class SlidingWindowReranker(Reranker):
    """The sliding window and its merge. A family supplies `permute(query, passages, scores)` -> the window's
    indices, best first (one model call); scores are positions turned into descending numbers (n - rank), so the
    interface stays score-based. `first_stage_scores` travel with their passages (InsertRank shows them)."""

    name = "sliding-window"
    window, step = 20, 10

    def permute(self, query: str, passages: Sequence[str], scores: Sequence[float] | None = None) -> list[int]:
        raise NotImplementedError

    def order(self, query: str, docs: Sequence[str], first_stage_scores: Sequence[float] | None = None) -> list[int]:
        """Indices of `docs` (given in first-stage order) in the reranked order."""
        order = list(range(len(docs)))
        for start, end in windows(len(docs), window=self.window, step=self.step):
            current = order[start:end]
            scores = None if first_stage_scores is None else [first_stage_scores[i] for i in current]
            perm = self.permute(query, [docs[i] for i in current], scores)
            order[start:end] = [current[p] for p in identifiers_complete(perm, len(current))]
        return order

    def score(self, query: str, docs: Sequence[str], first_stage_scores: Sequence[float] | None = None) -> list[float]:
        order = self.order(query, docs, first_stage_scores)
        scores = [0.0] * len(docs)
        for rank, i in enumerate(order):
            scores[i] = float(len(docs) - rank)
        return scores

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise TypeError("a listwise reranker ranks a query's whole list: call score(query, docs)")


def rankgpt_messages(query: str, passages: Sequence[str], *, max_words: int = 300) -> list[dict]:
    """RankGPT's `create_permutation_instruction` (sunnweiwei/RankGPT rank_gpt.py): a system prompt, the
    instruction, then one user turn per passage, each acknowledged by the assistant, then the post prompt. Their
    loop also shortens passages until tiktoken counts fit GPT's context; here passages are cut at `max_words`."""
    num = len(passages)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"I will provide you with {num} passages, each indicated by number identifier []. "
                                    f"\nRank the passages based on their relevance to query: {query}."},
        {"role": "assistant", "content": "Okay, please provide the passages."},
    ]
    for rank, passage in enumerate(passages, 1):
        content = " ".join(passage.replace("Title: Content: ", "").strip().split()[: int(max_words)])
        messages.append({"role": "user", "content": f"[{rank}] {content}"})
        messages.append({"role": "assistant", "content": f"Received passage [{rank}]."})
    messages.append({"role": "user", "content": (
        f"Search Query: {query}. \nRank the {num} passages above based on their relevance to the search query. "
        "The passages should be listed in descending order using identifiers. The most relevant passages should be "
        "listed first. The output format should be [] > [], e.g., [1] > [2]. Only response the ranking results, "
        "do not say any word or explain.")})
    return messages


class ListwiseReranker(SlidingWindowReranker):
    """RankGPT (Sun et al., EMNLP 2023) over an OpenAI-compatible chat endpoint. Subclasses change the prompt
    (`messages`) and the parsing (`parse`); the window, the merge and the model call stay here."""

    name = "listwise"
    default_max_tokens = 4096

    def __init__(self, *, model: str, base_url: str = "", api_key: str = "", client=None, window: int = 20, step: int = 10,
                 max_tokens: int | None = None, temperature: float = 0.0, timeout: float = 120.0, max_retries: int = 4,
                 backend: ChatBackend | None = None, max_words: int = 300):
        if window < 1 or not 1 <= step <= window:
            raise ValueError(f"window {window} / step {step}: need window >= 1 and 1 <= step <= window")
        self.window, self.step = int(window), int(step)
        self.backend = backend or ChatBackend(
            model=model, base_url=base_url, api_key=api_key, client=client, timeout=timeout,
            max_tokens=max_tokens or self.default_max_tokens, temperature=temperature, max_retries=max_retries)
        self.backend.cost = self.cost  # every call is counted on the reranker's own counter
        self.max_words = int(max_words)

    @classmethod
    def from_config(cls, *, path: str, base_model: str, config: dict) -> "ListwiseReranker":
        extra = {k: config[k] for k in cls.config_options() if k in config}
        backend = ChatBackend.from_config(path=path, config=config, max_tokens=cls.default_max_tokens)
        return cls(model=backend.model, backend=backend, window=int(config.get("window", 20)),
                   step=int(config.get("step", 10)), **extra)

    @classmethod
    def config_options(cls) -> tuple[str, ...]:
        """Config keys passed to __init__ (prompt knobs)."""
        return ("max_words",)

    @property
    def calls(self) -> int:
        return self.cost.calls

    def messages(self, query: str, passages: Sequence[str], scores: Sequence[float] | None = None) -> list[dict]:
        return rankgpt_messages(query, passages, max_words=self.max_words)

    def parse(self, text: str, n: int) -> list[int]:
        return permutation_parse(text, n)

    def permute(self, query: str, passages: Sequence[str], scores: Sequence[float] | None = None) -> list[int]:
        return self.parse(self.backend.complete(self.messages(query, passages, scores)), len(passages))
