"""The cost every reranker reports through the base class's counter, and a run's cost arithmetic."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from evaluation import services
from evaluation.rerankers import reranker_build
from evaluation.rerankers.listwise import ListwiseReranker
from tests.evaluation import tiny_lm
from tests.evaluation.conftest import minilm_path


def test_run_cost_totals_per_query_and_dollars():
    cost = services.eval_run_cost(counts={"calls": 10, "tokens_in": 4000, "tokens_out": 1000}, seconds=8.0,
                                  gpu_seconds=6.0, queries=4,
                                  price={"input_per_million": 1.0, "output_per_million": 4.0, "gpu_hour": 3.6})
    assert cost["dollars"] == pytest.approx(4000 / 1e6 + 4000 / 1e6 + 6.0 * 3.6 / 3600)
    assert cost["per_query"] == {"calls": 2.5, "tokens_in": 1000.0, "tokens_out": 250.0, "seconds": 2.0,
                                 "gpu_seconds": 1.5, "dollars": pytest.approx(cost["dollars"] / 4)}
    assert "per_query" not in services.eval_run_cost(counts={}, seconds=0, gpu_seconds=0, queries=0, price=None)
    with pytest.raises(services.EvaluationError, match="price"):
        services.eval_run_cost(counts={}, seconds=0, gpu_seconds=0, queries=1, price={"gpu_hour": "cheap"})


def test_listwise_counts_requests_and_the_tokens_the_server_reports():
    def create(*, model, messages, **kw):
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content="[2] > [1]"))],
                               usage=SimpleNamespace(prompt_tokens=120, completion_tokens=7))

    lw = ListwiseReranker(model="m", client=SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create))),
                          window=20, step=10)
    lw.score("q", [f"doc {i}" for i in range(30)])  # two windows
    assert lw.cost.as_dict() == {"calls": 2, "tokens_in": 240, "tokens_out": 14}


def test_cross_encoder_counts_its_real_tokens():
    ce = reranker_build("cross-encoder", path=minilm_path(), config={"batch_size": 2})
    docs = ["short", "a somewhat longer passage about moths", "x"]
    ce.score("q", docs)
    expected = sum(len(ce.tokenizer("q", d)["input_ids"]) for d in docs)
    assert ce.cost.as_dict() == {"calls": 3, "tokens_in": expected, "tokens_out": 0}
    assert ce.n_parameters and ce.n_parameters > services.SMOKE_MAX_PARAMETERS  # MiniLM is not a smoke model


def test_pointwise_causal_lm_counts_prompts_and_written_tokens(tmp_path):
    from curation import protocol
    from training.lora import _prompt_ids

    lm = reranker_build("pointwise", path=tiny_lm.saved_model(tmp_path / "m"), config={"mode": "generate",
                                                                                     "max_new_tokens": 3})
    pairs = [("q", "passage one"), ("q", "two")]
    lm.score_pairs(pairs)
    prompts = [protocol.pointwise_prompt(q, d) for q, d in pairs]
    n_in = sum(len(x) for x in _prompt_ids(lm.tokenizer, prompts, lm.context_size - 1))
    c = lm.cost.as_dict()
    # What was written is counted by re-encoding its text (random tokens may re-encode as more pieces).
    assert c["tokens_in"] == n_in and 2 <= c["calls"] <= 4 and c["tokens_out"] > 0
    assert lm.n_parameters < services.SMOKE_MAX_PARAMETERS
