"""One text from export to training to inference: the rank1 export row, the trainer's prompt + completion and
the prompt the evaluation's reranker builds are the same string (and the same prompt tokens)."""
from __future__ import annotations

import json

import pytest

from curation import protocol
from curation.exports import rank1_blocks
from tests.training.conftest import make_dataset_version, reasoning_rows
from training import lora


@pytest.mark.django_db
def test_export_row_trainer_text_and_inference_prompt_are_one_string(tiny_qwen_dir):
    from evaluation.services import _query_for

    rows = reasoning_rows(6)
    version = make_dataset_version(rows)
    exported = [json.loads(line) for line in b"".join(rank1_blocks(version)).decode().splitlines()]
    members = list(version.members.order_by("position").values(
        "query_text", "instruction", "passage_title", "passage_text", "reasoning_trace", "label"))
    assert len(exported) == len(members) == 6 and any(m["instruction"] for m in members)
    tok = lora.tokenizer_load(str(tiny_qwen_dir), add_think_tokens=True)
    for row, member in zip(exported, members):
        trainer = lora.causal_lm_example(member)
        # LLaMA-Factory's reading of the exported row (alpaca, template `empty`) is the trainer's text.
        assert protocol.training_prompt(row) == trainer["prompt"] and row["output"] == trainer["completion"]
        assert protocol.training_text(row) == trainer["prompt"] + trainer["completion"]
        # The evaluation side: the query as _execute builds it (instruction appended, no task prompt for
        # training data), the passage as _doc_texts joins it, the prompt as the rerankers build it.
        query = _query_for({"text": member["query_text"], "instruction": member["instruction"]}, side="og",
                           followir=False, task_prompt=None, use_instruction=True)
        inference = protocol.pointwise_prompt(query, protocol.passage_join(member["passage_title"], member["passage_text"]))
        assert inference == trainer["prompt"]
        assert trainer["completion"] == f"\n{member['reasoning_trace']}\n</think> {'true' if member['label'] else 'false'}"
        # Same tokens: the prompt ids the trainer learns from are the ids the scorer feeds the model.
        (tokenized,) = lora.causal_lm_tokenize(tok, [trainer], max_length=4096)
        n_prompt = sum(1 for label in tokenized["labels"] if label == -100)
        assert tokenized["input_ids"][:n_prompt] == lora._prompt_ids(tok, [inference], protocol.CONTEXT_SIZE)[0]
