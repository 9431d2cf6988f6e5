"""The Rank1 / LimRank prompt and training-example format (pure: no Django, no ML imports).

Training (LLaMA-Factory alpaca style) joins `instruction` and `input` with a newline to form the prompt;
`output` is what the model learns to write: the reasoning, then `</think> true` or `</think> false`.
Inference (evaluation) builds the same prompt with `rank1_prompt` and generates after `<think>`.
"""
from __future__ import annotations

RANK1_INSTRUCTION = "Determine if the following passage is relevant to the query. Answer only with 'true' or 'false'."
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def rank1_passage(passage_title: str, passage_text: str) -> str:
    """Title and text joined by a space (a passage without a title is just its text)."""
    return " ".join(part for part in ((passage_title or "").strip(), (passage_text or "").strip()) if part)


def rank1_query(query: str, instruction: str = "") -> str:
    """Instruction-following data: the query is `{query} {instruction}`."""
    query = (query or "").strip()
    instruction = (instruction or "").strip()
    return f"{query} {instruction}" if instruction else query


def rank1_input(query: str, passage_title: str, passage_text: str, instruction: str = "") -> str:
    return f"Query: {rank1_query(query, instruction)}\nPassage: {rank1_passage(passage_title, passage_text)}\n{THINK_OPEN}"


def rank1_prompt(query: str, passage_title: str, passage_text: str, instruction: str = "") -> str:
    """The full prompt the model sees (plain text, no chat template), ending with the `<think>` line."""
    return f"{RANK1_INSTRUCTION}\n{rank1_input(query, passage_title, passage_text, instruction)}"


def rank1_output(reasoning: str, label: bool) -> str:
    """What the model writes after `<think>`: its reasoning, then the closing tag and the answer."""
    answer = "true" if label else "false"
    reasoning = (reasoning or "").strip()
    return f"{reasoning}\n{THINK_CLOSE} {answer}" if reasoning else f"{THINK_CLOSE} {answer}"


def rank1_example(
    *, query: str, passage_title: str, passage_text: str, reasoning: str, label: bool, instruction: str = ""
) -> dict[str, str]:
    """One alpaca-style training row: `instruction + "\\n" + input == rank1_prompt(...)`."""
    return {
        "instruction": RANK1_INSTRUCTION,
        "input": rank1_input(query, passage_title, passage_text, instruction),
        "output": rank1_output(reasoning, label),
    }
