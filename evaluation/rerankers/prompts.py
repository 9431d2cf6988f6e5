"""The Rank1/LimRank pointwise prompt (plain text, no chat template) and BRIGHT's per-task query wrappers."""
from __future__ import annotations

RANK1_PROMPT = (
    "Determine if the following passage is relevant to the query. Answer only with 'true' or 'false'.\n"
    "Query: {query}\n"
    "Passage: {passage}\n"
    "<think>"
)
# The answer tokens: scored with their leading space, right after `</think>`.
TRUE_TOKEN, FALSE_TOKEN = " true", " false"
STOP_STRINGS = ("</think> true", "</think> false")

# Rank1's code wraps BRIGHT queries per task; StackExchange tasks ask for background, the coding and math
# tasks for a similar problem or the theorem used.
BRIGHT_QUERY_WRAPPERS = {
    **{t: "Can you find background information about the concepts used to answer the question:\n{query}"
       for t in ("biology", "earth_science", "economics", "psychology", "robotics", "stackoverflow", "sustainable_living")},
    "pony": "Can you find background information about the concepts used to answer the question about the pony programming language:\n{query}",
    "leetcode": "Can you find a coding problem that uses the same algorithm to solve it as this problem:\n{query}",
    "aops": "Can you find a math problem that uses the same problem-solving technique as this one:\n{query}",
    "theoremqa_questions": "Can you find a math problem that uses the same theorem to solve it as this one:\n{query}",
    "theoremqa_theorems": "Can you find the math theorem used to solve this problem:\n{query}",
}


def query_text(query: str, *, instruction: str = "", wrapper: str = "") -> str:
    """The query a reranker sees: FollowIR appends the instruction; BRIGHT may wrap it per task."""
    text = f"{query} {instruction}".strip() if instruction else query
    return wrapper.format(query=text) if wrapper else text


def rank1_prompt(query: str, passage: str) -> str:
    return RANK1_PROMPT.format(query=query, passage=passage)


def truncate_at_sentence(text: str) -> str:
    """Rank1's fallback for a reasoning that never closed: keep it up to its last full sentence."""
    cut = max(text.rfind(". "), text.rfind(".\n"), text.rfind("? "), text.rfind("! "))
    if cut == -1:
        cut = text.rfind(".")
    return text[: cut + 1] if cut != -1 else text
