"""Pointwise yes/no (Qwen3-Reranker style): the model card's own code as the golden reference, and a scripted
model whose p(yes) is known by hand."""
from __future__ import annotations

import math

import pytest

from evaluation.rerankers import reranker_build
from evaluation.rerankers.yes_no import PREFIX, SUFFIX, SYSTEM, YesNoReranker
from tests.evaluation import tiny_lm


# ---- transcribed from the Qwen3-Reranker model card ("Transformers Usage", Qwen/Qwen3-Reranker-0.6B README.md,
# as copied in GitHub dengcao/Qwen3-Reranker-0.6B README.md @ 2376239); only `tokenizer`/`model`/`max_length`
# became arguments.
def format_instruction(instruction, query, doc):
    if instruction is None:
        instruction = 'Given a web search query, retrieve relevant passages that answer the query'
    output = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}".format(instruction=instruction,query=query, doc=doc)
    return output


def process_inputs(pairs, tokenizer, model, prefix_tokens, suffix_tokens, max_length):
    inputs = tokenizer(
        pairs, padding=False, truncation='longest_first',
        return_attention_mask=False, max_length=max_length - len(prefix_tokens) - len(suffix_tokens)
    )
    for i, ele in enumerate(inputs['input_ids']):
        inputs['input_ids'][i] = prefix_tokens + ele + suffix_tokens
    inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)
    for key in inputs:
        inputs[key] = inputs[key].to(model.device)
    return inputs


def compute_logits(inputs, model, token_true_id, token_false_id):
    import torch

    with torch.no_grad():
        batch_scores = model(**inputs).logits[:, -1, :]
    true_vector = batch_scores[:, token_true_id]
    false_vector = batch_scores[:, token_false_id]
    batch_scores = torch.stack([false_vector, true_vector], dim=1)
    batch_scores = torch.nn.functional.log_softmax(batch_scores, dim=1)
    scores = batch_scores[:, 1].exp().tolist()
    return scores


CARD_PREFIX = "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n"
CARD_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
# ---- end of the transcription


def test_default_prompt_is_the_model_card_prompt():
    assert PREFIX.format(system=SYSTEM) == CARD_PREFIX
    assert SUFFIX == CARD_SUFFIX


def test_scores_equal_the_model_card_code_on_a_tiny_model(tmp_path):
    path = tiny_lm.saved_model(tmp_path / "m")
    r = reranker_build("yes-no", path=path, config={"batch_size": 2, "max_length": 400})
    assert isinstance(r, YesNoReranker)
    task = "Given a web search query, retrieve relevant passages that answer the query"
    pairs = [("What is the capital of China?", "The capital of China is Beijing."),
             ("Explain gravity", "Gravity is a force that attracts two bodies towards each other. " * 20),  # truncated
             ("apple", "pear")]
    ours = r.score_pairs(pairs)
    tok, model = r.tokenizer, r.model
    prefix_tokens = tok.encode(CARD_PREFIX, add_special_tokens=False)
    suffix_tokens = tok.encode(CARD_SUFFIX, add_special_tokens=False)
    inputs = process_inputs([format_instruction(task, q, d) for q, d in pairs], tok, model, prefix_tokens,
                            suffix_tokens, 400)
    assert inputs["input_ids"].shape[1] == 400  # the long pair was cut to the limit, as the card does
    theirs = compute_logits(inputs, model, tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no"))
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert r.cost.calls == 3 and r.cost.tokens_in == sum(len(x) for x in r.input_ids(pairs)) and r.cost.tokens_out == 0


def test_p_yes_by_hand_and_the_ranking_it_implies(tmp_path):
    """logit(yes) = number of "apple" tokens in the input, logit(no) = 1: p(yes) = e^c / (e^c + e)."""
    path = tiny_lm.saved_model(tmp_path / "m")
    r = reranker_build("yes-no", path=path, config={"batch_size": 3, "instruction": "find fruit"})
    apple = r.tokenizer.encode(" apple", add_special_tokens=False)
    r.model = tiny_lm.scripted(r.tokenizer, lambda ids: {r.yes_id: float(tiny_lm.count_of(ids, apple)), r.no_id: 1.0})
    docs = ["pear pear", "x apple apple apple", "x apple", "x apple apple"]
    scores = r.score("q", docs)
    for doc, s in zip(docs, scores):
        c = doc.count(" apple")
        assert s == pytest.approx(math.exp(c) / (math.exp(c) + math.e), abs=1e-6)
    assert [i for i, _ in r.rank("q", docs, doc_ids=["0", "1", "2", "3"])] == ["1", "3", "2", "0"]


def test_answer_words_and_system_prompt_are_configurable(tmp_path):
    path = tiny_lm.saved_model(tmp_path / "m")
    r = reranker_build("yes-no", path=path, config={"system": "Be brief.", "yes_token": "apple", "no_token": "pear",
                                                    "prefix": "S: {system}\nU: ", "suffix": "\nA:"})
    assert r.tokenizer.decode(r.prefix_ids) == "S: Be brief.\nU: "
    assert r.yes_id == r.tokenizer.convert_tokens_to_ids("apple")
    with pytest.raises(ValueError, match="not one token"):
        reranker_build("yes-no", path=path, config={"yes_token": "definitely-not-a-token"})
