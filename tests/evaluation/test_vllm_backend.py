"""The vLLM backend without a GPU: a stand-in `vllm` module records what the reranker asks for and answers with
log-probabilities; the reranker must use the reference's sampling settings, send every pair in one `generate`,
and score through the same rule as the transformers backend."""
from __future__ import annotations

import math
import sys
import types

import pytest

from curation import protocol
from training.tiny import byte_level_tokenizer


class _Logprob:
    def __init__(self, logprob):
        self.logprob = logprob


def _fake_vllm(answer):
    mod = types.ModuleType("vllm")
    mod.calls = []

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            mod.llm_kwargs = kw

        def generate(self, prompts, params, lora_request=None):
            mod.calls.append((prompts, params.kw))
            return [types.SimpleNamespace(outputs=[answer(i, p, params.kw)]) for i, p in enumerate(prompts)]

    mod.SamplingParams, mod.LLM = SamplingParams, LLM
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda *a: ("lora", a)
    return mod, {"vllm": mod, "vllm.lora": lora, "vllm.lora.request": request}


@pytest.fixture
def tok_dir(tmp_path):
    tok = byte_level_tokenizer(["q", "passage", protocol.INSTRUCTION])
    tok.save_pretrained(tmp_path / "m")
    return tmp_path / "m", tok


def test_vllm_backend_settings_one_generate_and_the_shared_rule(tok_dir, monkeypatch):
    path, tok = tok_dir
    from training.lora import answer_token_ids

    t, f = answer_token_ids(tok)

    def answer(i, prompt, kw):
        if kw["max_tokens"] == 1:  # the forced step
            return types.SimpleNamespace(text=" true", logprobs=[{t: _Logprob(-0.2), f: _Logprob(-1.7)}])
        if i == 0:  # answered: both tokens among the last position's top log-probabilities
            return types.SimpleNamespace(text="\nyes.\n", logprobs=[{5: _Logprob(-0.1)}, {t: _Logprob(-1.0), f: _Logprob(-2.0)}])
        return types.SimpleNamespace(text="\nIt is. Then", logprobs=[{9: _Logprob(-0.1)}])  # never closed

    mod, modules = _fake_vllm(answer)
    for name, m in modules.items():
        monkeypatch.setitem(sys.modules, name, m)
    from evaluation.rerankers import reranker_build

    r = reranker_build("causal-lm", path=str(path), config={"backend": "vllm"})
    assert r.pairs_per_call is None  # an eval run hands it every pair at once
    scores = r.score_pairs([("q", "passage one"), ("q", "passage two")])
    (gen_prompts, gen), (forced_prompts, forced) = mod.calls
    assert len(gen_prompts) == 2  # one generate over all pairs
    assert gen == {"temperature": 0, "max_tokens": 8192, "logprobs": 20, "stop": ["</think> true", "</think> false"],
                   "skip_special_tokens": False}
    assert forced["max_tokens"] == 1 and forced["allowed_token_ids"] == [t, f]
    assert mod.llm_kwargs["max_model_len"] == 16000 and mod.llm_kwargs["enable_prefix_caching"] is True
    assert tok.decode(gen_prompts[1]["prompt_token_ids"]) == protocol.pointwise_prompt("q", "passage two")
    assert tok.decode(forced_prompts[0]["prompt_token_ids"]) == protocol.forced_prompt(
        protocol.pointwise_prompt("q", "passage two"), "\nIt is. Then")
    assert scores[0] == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert scores[1] == pytest.approx(math.exp(-0.2) / (math.exp(-0.2) + math.exp(-1.7)))
