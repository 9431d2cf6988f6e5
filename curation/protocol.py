"""The Rank1 / LimRank pointwise protocol, defined once (pure: no Django, no ML imports).

Curation's export, training (training/lora.py) and evaluation (evaluation/rerankers, evaluation/services.py)
all build their text and read their scores through this module, so what the model is trained on, what it is
asked at inference and how its answer is scored cannot drift apart. It follows the authors' released code
(GitHub SighingSnow/limrank, MIT: rerank-exps/rank1.py, run_mteb.py, prompts.py, train_configs/); the golden
tests in tests/curation/test_protocol.py compare every string with that code, transcribed.

The prompt (plain text, no chat template):
    Determine if the following passage is relevant to the query. Answer only with 'true' or 'false'.
    Query: {query}
    Passage: {passage}
    <think>
- query: `f"{query} {instruction}".strip()` when an instruction is given and differs from the query, then put
  into the task's prompt (`FILL_QUERY_HERE`) when the task has one and it is not switched off (`--no-prompt`);
- passage: `f"{title} {text}"` when it has a title, else the text.
What the model writes after `<think>`: "\\n", its reasoning, "\\n</think>", then " true" or " false".

Scoring (both backends supply only token log-probabilities; the rule is `pointwise_scores` here):
greedy generation stopped by the strings "</think> true" / "</think> false", at most 8192 new tokens in a
16,000-token context; the score is p = e^lp(" true") / (e^lp(" true") + e^lp(" false")) read from the top-20
log-probabilities of the last generated position. When either token is missing there (the reasoning never
closed), the text is cut at its last sentence, `\\n</think>` is appended and one token restricted to
" true"/" false" is forced; failing that, 0.5.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

INSTRUCTION = "Determine if the following passage is relevant to the query. Answer only with 'true' or 'false'."
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TRUE_TOKEN, FALSE_TOKEN = " true", " false"
STOP_STRINGS = ("</think> true", "</think> false")
MAX_NEW_TOKENS = 8192
CONTEXT_SIZE = 16000
TOP_LOGPROBS = 20
FALLBACK_SCORE = 0.5
FILL_QUERY = "FILL_QUERY_HERE"

PROMPTS_FILE = Path(__file__).resolve().parent / "data" / "reference_prompts" / "prompts.json"

# Task names as the reference spells them (mteb task names; BRIGHT is one task with 12 subtasks).
BEIR_TASKS = ("ArguAna", "ClimateFEVER", "DBPedia", "FEVER", "FiQA2018", "HotpotQA", "NFCorpus", "NQ",
              "QuoraRetrieval", "SCIDOCS", "SciFact", "TRECCOVID", "Touche2020")
BRIGHT_TASK = "BrightRetrieval"
BRIGHT_SUBTASKS = ("biology", "earth_science", "economics", "psychology", "robotics", "stackoverflow",
                   "sustainable_living", "leetcode", "pony", "aops", "theoremqa_questions", "theoremqa_theorems")
FOLLOWIR_TASKS = ("Core17", "Robust04", "News21")
OTHER_TASKS = ("LitSearchRetrieval",)
TASKS = (*BEIR_TASKS, BRIGHT_TASK, *FOLLOWIR_TASKS, *OTHER_TASKS)

# Names the studio's benchmarks go by (BEIR folder names, ir_datasets-style spellings) -> the reference's.
_ALIASES = {
    "arguana": "ArguAna", "climatefever": "ClimateFEVER", "dbpedia": "DBPedia", "dbpediaentity": "DBPedia",
    "fever": "FEVER", "fiqa": "FiQA2018", "fiqa2018": "FiQA2018", "hotpotqa": "HotpotQA", "nfcorpus": "NFCorpus",
    "nq": "NQ", "quora": "QuoraRetrieval", "quoraretrieval": "QuoraRetrieval", "scidocs": "SCIDOCS",
    "scifact": "SciFact", "treccovid": "TRECCOVID", "touche2020": "Touche2020", "webistouche2020": "Touche2020",
    "core17": "Core17", "robust04": "Robust04", "news21": "News21", "litsearch": "LitSearchRetrieval",
    "litsearchretrieval": "LitSearchRetrieval", "bright": BRIGHT_TASK, "brightretrieval": BRIGHT_TASK,
    **{f"{t.lower()}instructionretrieval": t for t in FOLLOWIR_TASKS},
    **{f"followir{t.lower()}": t for t in FOLLOWIR_TASKS},
}


class UnknownTaskError(ValueError):
    """A task or subtask name the reference does not know."""


# ----------------------------------------------------------------------------- per-task prompts

@lru_cache(maxsize=1)
def reference_prompts() -> dict[str, str]:
    """The authors' per-dataset prompts (data file shipped with its source and MIT notice)."""
    return json.loads(PROMPTS_FILE.read_text(encoding="utf-8"))


def _mteb_name(task: str) -> str:
    # run_mteb.py renames FollowIR tasks to their mteb names before it looks a prompt up, so they get none.
    return f"{task}InstructionRetrieval" if task in FOLLOWIR_TASKS else task


def task_prompt(task: str, subtask: str | None = None) -> str | None:
    """The prompt the reference wraps a task's queries in (None: the query is used as is)."""
    prompts, name = reference_prompts(), _mteb_name(task)
    if subtask is not None and name in prompts:
        return prompts.get(f"{name}_{subtask}", prompts[name])
    return prompts.get(name)


def task_normalize(task: str, subtask: str | None = None) -> tuple[str, str | None]:
    """A task name as a user may type it (any case, dashes) -> the reference's spelling; checks the subtask."""
    key = "".join(ch for ch in task.lower() if ch.isalnum())
    name = _ALIASES.get(key) or next((t for t in TASKS if t.lower() == key), None)
    if name is None:
        raise UnknownTaskError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if name == BRIGHT_TASK:
        if not subtask:
            raise UnknownTaskError(f"{BRIGHT_TASK} needs a subtask: {', '.join(BRIGHT_SUBTASKS)}")
        sub = subtask.strip().lower().replace("-", "_").replace(" ", "_")
        if sub not in BRIGHT_SUBTASKS:
            raise UnknownTaskError(f"unknown {BRIGHT_TASK} subtask {subtask!r}; known: {', '.join(BRIGHT_SUBTASKS)}")
        return name, sub
    return name, None


def benchmark_task(*, name: str, format: str, task: str = "") -> tuple[str, str | None] | None:
    """The reference task of a studio benchmark (None when the reference has no such task)."""
    if format == "bright":
        return (BRIGHT_TASK, task) if task in BRIGHT_SUBTASKS else None
    last = name.replace("\\", "/").rstrip("/").split("/")[-1]
    for candidate in (last, name):
        try:
            found, _ = task_normalize(candidate, None)
        except UnknownTaskError:
            continue
        return None if found == BRIGHT_TASK else (found, None)
    return None


# ----------------------------------------------------------------------------- the prompt

def query_with_instruction(query: str, instruction: str | None = None) -> str:
    """Instruction-following tasks: `f"{query} {instruction}".strip()`, or the query alone when they are equal."""
    if not instruction:
        return query
    return f"{query} {instruction}".strip() if query.strip() != instruction.strip() else query.strip()


def query_in_task_prompt(query: str, prompt: str | None) -> str:
    return prompt.replace(FILL_QUERY, query) if prompt else query


def passage_join(title: str | None, text: str) -> str:
    """`title text` (the reference joins them with one space); a passage without a title is its text."""
    return f"{title} {text}" if title else text


def prompt_input(query: str, passage: str) -> str:
    """The lines after the instruction line: the training row's `input`."""
    return f"Query: {query}\nPassage: {passage}\n{THINK_OPEN}"


def pointwise_prompt(query: str, passage: str) -> str:
    """The full prompt for a query already put in its task prompt and a joined passage; ends on `<think>`."""
    return f"{INSTRUCTION}\n{prompt_input(query, passage)}"


def prompt_build(*, query: str, passage_title: str | None, passage_text: str, instruction: str | None = None,
                 task: str | None = None, subtask: str | None = None, no_prompt: bool = False) -> str:
    """The exact string the pointwise reranker sees for one pair (what `manage.py rerank_prompt` prints)."""
    prompt = None if (no_prompt or not task) else task_prompt(task, subtask)
    q = query_in_task_prompt(query_with_instruction(query, instruction), prompt)
    return pointwise_prompt(q, passage_join(passage_title, passage_text))


# ----------------------------------------------------------------------------- training text

def completion(reasoning: str, label: bool) -> str:
    """What the model writes after `<think>`: a newline, the reasoning, `\\n</think>`, the answer.
    The newline after `<think>` is the reference's: its forced answer is `f"{prompt}\\n{reasoning}\\n</think>"`."""
    return f"\n{(reasoning or '').strip()}\n{THINK_CLOSE}{TRUE_TOKEN if label else FALSE_TOKEN}"


def training_example(*, query: str, passage_title: str | None, passage_text: str, reasoning: str, label: bool,
                     instruction: str | None = None) -> dict[str, str]:
    """One alpaca-style row (LLaMA-Factory, template `empty`): `instruction + "\\n" + input` is the prompt,
    `output` the completion; no end-of-sequence token follows the answer."""
    return {
        "instruction": INSTRUCTION,
        "input": prompt_input(query_with_instruction(query, instruction), passage_join(passage_title, passage_text)),
        "output": completion(reasoning, label),
    }


def training_prompt(row: Mapping[str, str]) -> str:
    """LLaMA-Factory's alpaca reading of a row: instruction and input joined by a newline."""
    return f"{row['instruction']}\n{row['input']}" if row.get("input") else row["instruction"]


def training_text(row: Mapping[str, str]) -> str:
    return training_prompt(row) + row["output"]


# ----------------------------------------------------------------------------- scoring

def true_probability(lp_true: float, lp_false: float) -> float:
    """exp(lp_true) / (exp(lp_true) + exp(lp_false)), computed stably."""
    m = max(lp_true, lp_false)
    a, b = math.exp(lp_true - m), math.exp(lp_false - m)
    return a / (a + b)


def score_from_logprobs(logprobs: Optional[Mapping[int, float]], true_id: int, false_id: int) -> float | None:
    """p(true) from one position's top log-probabilities; None when either answer token is not among them."""
    if not logprobs or true_id not in logprobs or false_id not in logprobs:
        return None
    lt, lf = float(logprobs[true_id]), float(logprobs[false_id])
    if not (math.isfinite(lt) or math.isfinite(lf)):
        return None
    return true_probability(lt, lf)


def reasoning_cut(text: str) -> str:
    """An unfinished reasoning, cut after its last '.', '!' or '?' (kept whole when it ends on one)."""
    text = text.rstrip()
    if not text.endswith((".", "!", "?")):
        last = max(text.rfind("."), text.rfind("!"), text.rfind("?"))
        if last != -1:
            text = text[: last + 1]
    return text.strip()


def forced_prompt(prompt: str, generated: str) -> str:
    """The prompt that forces an answer after an unfinished reasoning."""
    return f"{prompt}\n{reasoning_cut(generated)}\n{THINK_CLOSE}"


def direct_prompt(prompt: str) -> str:
    """`direct` mode (no reasoning, the studio's cheap mode): the answer right after an empty reasoning."""
    return forced_prompt(prompt, "")


@dataclass
class Generation:
    """What a backend returns for one prompt: the generated text and the top log-probabilities of its last
    generated position ({token id: logprob}; None when nothing was generated)."""

    text: str
    last_logprobs: Optional[Mapping[int, float]]


@dataclass
class PairScore:
    score: float
    how: str  # answered | forced | fallback
    text: str = ""


def pointwise_scores(
    prompts: Sequence[str],
    *,
    generate: Callable[[list[str]], list[Generation]],
    force: Callable[[list[str]], list[Optional[Mapping[int, float]]]],
    true_id: int,
    false_id: int,
) -> list[PairScore]:
    """The scoring rule, backend-free: `generate` runs greedy generation with the stop strings, `force` returns
    the log-probabilities of one token restricted to " true"/" false" after each given prompt."""
    prompts = list(prompts)
    out: list[PairScore | None] = [None] * len(prompts)
    retry: list[int] = []
    gens = generate(prompts) if prompts else []
    for i, g in enumerate(gens):
        s = score_from_logprobs(g.last_logprobs, true_id, false_id)
        if s is None:
            retry.append(i)
        else:
            out[i] = PairScore(s, "answered", g.text)
    if retry:
        forced = force([forced_prompt(prompts[i], gens[i].text) for i in retry])
        for i, lp in zip(retry, forced):
            s = score_from_logprobs(lp, true_id, false_id)
            out[i] = PairScore(FALLBACK_SCORE, "fallback", gens[i].text) if s is None else PairScore(s, "forced", gens[i].text)
    return [s for s in out if s is not None]


def direct_scores(prompts: Sequence[str], *, force, true_id: int, false_id: int) -> list[PairScore]:
    """`direct` mode through the same forced step (no generation)."""
    lps = force([direct_prompt(p) for p in prompts]) if prompts else []
    return [PairScore(FALLBACK_SCORE, "fallback") if (s := score_from_logprobs(lp, true_id, false_id)) is None
            else PairScore(s, "direct") for lp in lps]
