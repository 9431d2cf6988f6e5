"""ReasonRank (Liu et al., 2025; code 8421BCD/ReasonRank): listwise reranking that reasons before it ranks.

The prompt is ReasonRank's `rank_GPT_reasoning` mode (the one its released models are trained and run with):
the reasoning system prompt of `listwise_prompt_r1.toml`, RankGPT's prefix and passage list, and a post prompt
asking for "[] > []" without "Only respond with the ranking". The ranking is read from `<answer>…</answer>`
after the `<think>` block (their `_clean_response`), window 20 / step 10 through the shared sliding window."""
from __future__ import annotations

import re
from typing import Sequence

from .listwise import ListwiseReranker, fix_text, identifiers_complete, replace_number

SYSTEM_REASONING = (
    "You are RankLLM, an intelligent assistant that can rank passages based on their relevance to the query. "
    "Given a query and a passage list, you first thinks about the reasoning process in the mind and then provides "
    "the answer (i.e., the reranked passage list). The reasoning process and answer are enclosed within <think> "
    "</think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> "
    "answer here </answer>."
)
ANSWER_PATTERN = r"<think>.*?</think>\s*<answer>(.*?)</answer>"


def passage_content(text: str, max_words: int) -> str:
    """ReasonRank's `convert_doc_to_prompt_content`: stripped, ftfy-fixed, cut, "[n]" -> "(n)". They cut by their
    tokenizer's tokens; over an API the tokenizer is unknown, so the cut is by words."""
    content = fix_text(text.strip())
    return replace_number(" ".join(content.split()[: int(max_words)]))


def reasonrank_messages(query: str, passages: Sequence[str], *, max_words: int = 512) -> list[dict]:
    query = replace_number(query).strip()
    num = len(passages)
    user = (f"I will provide you with {num} passages, each indicated by a numerical identifier []. "
            f"Rank the passages based on their relevance to the search query: {query}.\n\n")
    user += "".join(f"[{rank}] {passage_content(p, max_words)}\n" for rank, p in enumerate(passages, 1))
    user += (f"Search Query: {query}.\nRank the {num} passages above based on their relevance to the search query. "
             "All the passages should be included and listed using identifiers, in descending order of relevance. "
             "The format of the answer should be [] > [], e.g., [2] > [1].")
    return [{"role": "system", "content": SYSTEM_REASONING}, {"role": "user", "content": fix_text(user)}]


def reasonrank_parse(text: str, n: int) -> list[int]:
    """Their `_clean_response` + `receive_permutation`: the answer after the reasoning (or what follows the last
    `<answer>` when the pattern does not match), every digit run an identifier."""
    match = re.search(ANSWER_PATTERN, text.lower(), re.DOTALL)
    if match:
        text = match.group(1).strip()
    elif "<answer>" in text:
        text = text.split("<answer>")[-1]
    digits = "".join(c if c.isdigit() else " " for c in text).split()
    return identifiers_complete([int(x) - 1 for x in digits], n)


class ReasonRankReranker(ListwiseReranker):
    name = "reasonrank"
    default_max_tokens = 8192  # the reasoning comes first: room for it and the ranking

    def __init__(self, *, max_words: int = 512, **kw):
        super().__init__(max_words=max_words, **kw)

    def messages(self, query, passages, scores=None):
        return reasonrank_messages(query, passages, max_words=self.max_words)

    def parse(self, text: str, n: int) -> list[int]:
        return reasonrank_parse(text, n)
