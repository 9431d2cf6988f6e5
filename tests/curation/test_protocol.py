"""Golden tests: the studio's Rank1/LimRank prompt equals what the authors' released code builds.

The reference side is transcribed from GitHub SighingSnow/limrank (commit 92843f07, MIT):
- `PROMPT_DICT`: executed from the verbatim copy in tests/fixtures/limrank_reference/prompts_head.py.txt;
- `get_prompt` (rerank-exps/prompts.py), the FollowIR renaming and `skip_prompt` of `run_evaluation`
  (rerank-exps/run_mteb.py), `rank1.predict`'s query/instruction/passage handling and `rank1.return_prompt`
  (rerank-exps/rank1.py): copied below as they are written there.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation import protocol

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "limrank_reference" / "prompts_head.py.txt"


def _reference_namespace() -> dict:
    ns: dict = {}
    exec(FIXTURE.read_text(encoding="utf-8"), ns)  # noqa: S102 - the reference's own dict literal, verbatim
    return ns


PROMPT_DICT = _reference_namespace()["PROMPT_DICT"]

# ---- rerank-exps/prompts.py, transcribed
BEIR_DATASETS = ["ArguAna", "ClimateFEVER", "DBPedia", "FEVER", "FiQA2018", "HotpotQA", "NFCorpus", "NQ",
                 "QuoraRetrieval", "SCIDOCS", "SciFact", "TRECCOVID", "Touche2020"]
FOLLOWIR_DATASETS = ["Core17", "Robust04", "News21"]
BRIGHT_SUBJECTS = ["earth_science", "biology", "economics", "psychology", "robotics", "stackoverflow",
                   "sustainable_living", "leetcode", "pony", "aops", "theoremqa_questions", "theoremqa_theorems"]


def get_prompt(task_name, subtask_name: str = None):
    if subtask_name is not None and task_name in PROMPT_DICT:
        # if subtask is present, use that, otherwise use just the task name
        if f"{task_name}_{subtask_name}" in PROMPT_DICT:
            return PROMPT_DICT[f"{task_name}_{subtask_name}"]
        else: # default for subtask (e.g. BrightRetrieval)
            return PROMPT_DICT[task_name]
    elif task_name in PROMPT_DICT:
        # no subtask
        return PROMPT_DICT[task_name]
    else:
        return None


# ---- rerank-exps/run_mteb.py run_evaluation, the lines that choose the prompt
def reference_dataset_prompt(dataset_name, subtask, skip_prompt):
    if dataset_name in FOLLOWIR_DATASETS:
        dataset_name = f"{dataset_name}InstructionRetrieval"
    prompt = get_prompt(dataset_name, subtask)
    if prompt is not None and not skip_prompt:
        is_prompted = True  # noqa: F841
    else:
        is_prompted = False  # noqa: F841
        prompt = None
    return prompt


# ---- rerank-exps/rank1.py, rank1.return_prompt and the prompt-building part of rank1.predict
def return_prompt(query, doc_content, prompt) -> str:
    query = prompt.replace("FILL_QUERY_HERE", query) if prompt else query
    return "Determine if the following passage is relevant to the query. Answer only with 'true' or 'false'.\n" \
            f"Query: {query}\n" \
            f"Passage: {doc_content}\n" \
            "<think>" # force the model to start with this


def reference_prompts(input_to_rerank, dataset_prompt):
    inputs = list(zip(*input_to_rerank))
    if len(input_to_rerank[0]) == 2:
        queries, passages = inputs
        instructions = None
    else:
        queries, passages, instructions = inputs

    if instructions is not None and instructions[0] is not None:
        queries = [f"{q} {i}".strip() if q.strip() != i.strip() else q.strip() for i, q in zip(instructions, queries)]

    if isinstance(passages[0], dict):
        passages = [f"{v['title']} {v['text']}" if 'title' in v else v['text'] for v in passages]

    prompts = [
        return_prompt(query, passage, dataset_prompt)
        for query, passage in zip(queries, passages)
    ]
    return prompts


QUERY = "Is 0-dimensional biomaterials show inductive properties?"
TITLE, TEXT = "Nanoparticles and cells", "Zero-dimensional materials such as nanoparticles are studied here."
INSTRUCTION = "Relevant documents discuss bone induction; reviews are not relevant."

CASES = ([(t, None) for t in BEIR_DATASETS] + [("BrightRetrieval", s) for s in BRIGHT_SUBJECTS]
         + [(t, None) for t in FOLLOWIR_DATASETS] + [("LitSearchRetrieval", None)])


def test_data_file_is_the_reference_dict_verbatim():
    assert protocol.reference_prompts() == PROMPT_DICT
    assert len(PROMPT_DICT) == 15 and PROMPT_DICT["BrightRetrieval_theoremqa_theorems"] == PROMPT_DICT["BrightRetrieval_theoremqa_questions"]
    assert json.loads(protocol.PROMPTS_FILE.read_text()) == PROMPT_DICT
    notice = protocol.PROMPTS_FILE.parent
    assert "MIT License" in (notice / "LICENSE").read_text() and "SighingSnow/limrank" in (notice / "SOURCE.md").read_text()


@pytest.mark.parametrize("skip_prompt", [False, True], ids=["prompt", "no-prompt"])
@pytest.mark.parametrize("task,subtask", CASES, ids=[f"{t}-{s}" if s else t for t, s in CASES])
def test_final_prompt_equals_the_reference(task, subtask, skip_prompt):
    followir = task in FOLLOWIR_DATASETS
    bright = task == "BrightRetrieval"
    # Shapes as mteb hands them to rank1.predict: BRIGHT documents have no title; FollowIR adds the instruction.
    passage = {"text": TEXT} if bright else {"title": TITLE, "text": TEXT}
    row = (QUERY, passage, INSTRUCTION) if followir else (QUERY, passage)
    (expected,) = reference_prompts([row], reference_dataset_prompt(task, subtask, skip_prompt))
    got = protocol.prompt_build(query=QUERY, passage_title=None if bright else TITLE, passage_text=TEXT,
                                instruction=INSTRUCTION if followir else None, task=task, subtask=subtask,
                                no_prompt=skip_prompt)
    assert got == expected
    if reference_dataset_prompt(task, subtask, skip_prompt) is not None:
        assert "FILL_QUERY_HERE" not in got and got != protocol.prompt_build(
            query=QUERY, passage_title=None if bright else TITLE, passage_text=TEXT, task=task, subtask=subtask,
            no_prompt=True)  # the task prompt is really applied (not only equal by absence)


def test_instruction_equal_to_the_query_and_spacing_follow_the_reference():
    for query, instruction in (("  same text ", "same text"), ("q ", " extra"), ("q", "")):
        row = (query, {"title": "T", "text": "x"}, instruction)
        (expected,) = reference_prompts([row], None)
        assert protocol.prompt_build(query=query, passage_title="T", passage_text="x", instruction=instruction) == expected


def test_studio_benchmarks_map_to_reference_tasks():
    assert protocol.benchmark_task(name="scifact", format="beir") == ("SciFact", None)
    assert protocol.benchmark_task(name="beir/trec-covid", format="beir") == ("TRECCOVID", None)
    assert protocol.benchmark_task(name="webis-touche2020", format="beir") == ("Touche2020", None)
    assert protocol.benchmark_task(name="BRIGHT/leetcode", format="bright", task="leetcode") == ("BrightRetrieval", "leetcode")
    assert protocol.benchmark_task(name="FollowIR/Core17", format="followir") == ("Core17", None)
    assert protocol.benchmark_task(name="robust04-instructions", format="followir") is None
    assert protocol.benchmark_task(name="Robust04InstructionRetrieval", format="followir") == ("Robust04", None)
    assert protocol.benchmark_task(name="my-private-set", format="beir") is None
    with pytest.raises(protocol.UnknownTaskError, match="needs a subtask"):
        protocol.task_normalize("BrightRetrieval")
    with pytest.raises(protocol.UnknownTaskError, match="unknown BrightRetrieval subtask 'chemistry'"):
        protocol.task_normalize("BrightRetrieval", "chemistry")
    assert protocol.task_normalize("trec-covid") == ("TRECCOVID", None)


def test_forced_answer_text_follows_the_reference():
    # rank1._fix_incomplete_responses: rstrip, cut after the last . ! ?, strip, then f"{prompt}\n{text}\n</think>"
    assert protocol.reasoning_cut("First point. Second one! Third unfinis") == "First point. Second one!"
    assert protocol.reasoning_cut("\nAll done.  \n") == "All done."
    assert protocol.reasoning_cut("no punctuation at all") == "no punctuation at all"
    assert protocol.forced_prompt("P<think>", "\nA. B") == "P<think>\nA.\n</think>"
    assert protocol.true_probability(0.0, 0.0) == 0.5
    assert protocol.score_from_logprobs({1: -0.1}, 1, 2) is None  # " false" not among the top log-probabilities
    assert protocol.score_from_logprobs({1: -1.0, 2: -2.0}, 1, 2) == pytest.approx(1 / (1 + pow(2.718281828459045, -1)))
