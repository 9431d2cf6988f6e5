"""Rerankers behind one interface: cross-encoder scores, the true/false rule, listwise windows, lazy optional deps."""
from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import pytest

from evaluation.rerankers import RerankerDependencyError, reranker_build
from curation.protocol import direct_prompt, pointwise_prompt, true_probability
from evaluation.rerankers.listwise import ListwiseReranker, permutation_parse, windows
from tests.evaluation.conftest import minilm_path
from training.lora import answer_token_ids


def test_cross_encoder_scores_are_order_independent_and_batched():
    ce = reranker_build("cross-encoder", path=minilm_path(), config={"batch_size": 2, "max_length": 64})
    docs = ["Insects fly to light by phototaxis.", "Bees dance.", "A long passage " * 20, "Moths and lamps."]
    scores = ce.score("why are insects attracted to light", docs)
    assert len(scores) == 4 and all(isinstance(s, float) for s in scores)
    # Sorting by length for batching must not change which score belongs to which passage.
    rev = ce.score("why are insects attracted to light", docs[::-1])
    assert rev[::-1] == pytest.approx(scores, abs=1e-4)
    ranked = ce.rank("why are insects attracted to light", docs, doc_ids=["a", "b", "c", "d"])
    assert [s for _, s in ranked] == sorted(scores, reverse=True)


def test_true_probability_rule():
    assert true_probability(math.log(0.6), math.log(0.2)) == pytest.approx(0.75)
    assert true_probability(-1000.0, -1000.0) == pytest.approx(0.5)  # stable for tiny probabilities


def test_windows_and_permutation_parsing():
    assert windows(100) == [(80, 100), (70, 90), (60, 80), (50, 70), (40, 60), (30, 50), (20, 40), (10, 30), (0, 20)]
    assert windows(15) == [(0, 15)]
    assert permutation_parse("[3] > [1] > [3] > [9] > [2]", 4) == [2, 0, 1, 3]
    assert permutation_parse("<think>maybe [4] first</think> [2] > [1]", 4) == [1, 0, 2, 3]


class _OracleChat:
    """An OpenAI-compatible client double that ranks passages by a hidden relevance (the digits in the text)."""

    def __init__(self):
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))
        self.calls = []

    def create(self, *, model, messages, **kw):
        import re

        body = "\n".join(m["content"] for m in messages)  # RankGPT sends one passage per user turn
        items = re.findall(r"^\[(\d+)\] doc (\d+)$", body, re.M)
        self.calls.append(len(items))
        order = sorted(items, key=lambda x: -int(x[1]))
        text = " > ".join(f"[{i}]" for i, _ in order)
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=text))])


def test_listwise_sliding_window_brings_the_best_to_the_top():
    client = _OracleChat()
    lw = ListwiseReranker(model="m", client=client, window=20, step=10)
    docs = [f"doc {i}" for i in range(100)]  # the most relevant (99) starts last
    order = lw.order("q", docs)
    assert client.calls == [20] * 9
    assert order[:10] == [99, 98, 97, 96, 95, 94, 93, 92, 91, 90]  # one bottom-up pass carries the top 10 up
    scores = lw.score("q", docs)
    assert scores[99] == 100.0


def test_vllm_backend_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed on CPU hosts
    with pytest.raises(RerankerDependencyError, match=r"install vllm \(pip install -r requirements-gpu.txt"):
        reranker_build("causal-lm", path="Qwen/Qwen2.5-7B", config={"backend": "vllm"})
    with pytest.raises(ValueError, match="no reranker for kind"):
        reranker_build("bm25")


def test_causal_lm_direct_mode_on_a_tiny_model(tmp_path):
    """The transformers backend on a tiny random Qwen2 with a real tokenizer: p(true) equals the rule applied to
    the model's own next-token log-probabilities after `</think>`."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(minilm_path())
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256)
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    lm = reranker_build("causal-lm", path=str(tmp_path / "tiny"), config={"mode": "direct", "batch_size": 2})
    docs = ["passage one", "a much longer second passage that forces left padding in its batch", "three"]
    scores = lm.score("q", docs)
    assert all(0 < s < 1 for s in scores)
    true_id, false_id = answer_token_ids(lm.tokenizer)
    for i, doc in enumerate(docs):
        text = direct_prompt(pointwise_prompt("q", doc))
        ids = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            lp = torch.log_softmax(lm.model(input_ids=ids.input_ids).logits[0, -1].float(), -1)
        # Scored alone, without padding: the batched (left-padded) score must be the same.
        assert scores[i] == pytest.approx(true_probability(float(lp[true_id]), float(lp[false_id])), abs=1e-5)
