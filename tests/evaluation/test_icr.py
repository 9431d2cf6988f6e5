"""ICR: the authors' calibration and attention aggregation (transcribed from OSU-NLP-Group/In-Context-Reranking
`src/in_context_reranker.py` @ 1b965f8) against ours, and a model whose attention is uniform, so each passage's
score is known by hand."""
from __future__ import annotations

import pytest

from evaluation.rerankers import reranker_build
from evaluation.rerankers.icr import ICRReranker, icr_calibrated, icr_prompt
from tests.evaluation import tiny_lm


def _reference_masked_na(perdoc_result, doc_tok_scores_calib_na):
    """The loop of `get_sorted_docs`, scoring_strategy == 'masked_NA_calibration', verbatim but for the device
    move (CPU here): returns doc_scores."""
    import torch

    _i = 0
    doc_scores = torch.zeros(len(perdoc_result))
    for doc_tok_score, doc_tok_score_na in zip(perdoc_result, doc_tok_scores_calib_na):
        calibrated_scores = doc_tok_score[1] - doc_tok_score_na[1]

        mean_bias = calibrated_scores.mean()
        std_bias = calibrated_scores.std()
        threshold = mean_bias - 2*std_bias
        tok_mask = (calibrated_scores>threshold)

        doc_tok_score[1] = doc_tok_score[1] * tok_mask
        doc_tok_score_na[1] = doc_tok_score_na[1] * tok_mask
        doc_tok_score[1] = doc_tok_score[1] - doc_tok_score_na[1]
        doc_scores[_i] = doc_tok_score[1].sum()
        _i+=1
    return doc_scores


def test_calibration_arithmetic_equals_the_reference():
    import torch

    torch.manual_seed(0)
    docs = [torch.rand(n) for n in (5, 40, 17)]
    na = [torch.rand(n) * 0.5 for n in (5, 40, 17)]
    na[1][3] = 5.0  # a token the content-free query attends to far more: masked out
    ref = _reference_masked_na([[None, d.clone()] for d in docs], [[None, x.clone()] for x in na])
    ours = [icr_calibrated(d, x) for d, x in zip(docs, na)]
    assert ours == pytest.approx(ref.tolist(), abs=1e-6)
    assert ours[1] == pytest.approx(float((docs[1] - na[1]).sum() - (docs[1][3] - na[1][3])), abs=1e-5)


def test_prompt_layout_is_the_instruct_template_with_the_query_last():
    text, spans, q = icr_prompt("who?", ["alpha", "beta"], retrieval_type="IE", prefix="[INST]", suffix="[/INST]")
    assert text == ("[INST] Here are some paragraphs:\n\n[1] alpha\n\n[2] beta\n\nPlease find information that are "
                    "relevant to the following query in the paragraphs above.\n\nQuery: who?[/INST]")
    assert [text[a:b] for a, b in spans] == ["[1] alpha", "[2] beta"] and text[q:].startswith("Please find")


def test_attention_aggregation_equals_the_reference_eager_path(tmp_path):
    import torch

    r = reranker_build("icr", path=tiny_lm.saved_model(tmp_path / "m"), config={"scoring": "query_last"})
    text, spans, q_start = icr_prompt("apple pie", ["pear tart", "apple crumble with pear", "no"])
    offsets, ours = r.token_attention(text, q_start)
    enc = r.tokenizer(text, return_tensors="pt")
    query_start_tok_idx = next(i for i, (s, e) in enumerate(offsets) if e > s and s >= q_start)
    query_end_tok_idx = enc.input_ids.shape[1] - 1
    with torch.no_grad():
        output = r.model(input_ids=enc.input_ids, output_attentions=True)
    # `score_documents`, eager branch:
    attention_weights = [attn[0][:,query_start_tok_idx:query_end_tok_idx+1,:].mean(1) for attn in output.attentions]
    attention_weights = torch.stack(attention_weights, dim=0)
    attention_weights = attention_weights.sum(0) # sum attention scores across layers
    attention_weights = attention_weights.sum(0) # sum attention scores across attention heads
    assert ours.tolist() == pytest.approx(attention_weights.tolist(), abs=1e-5)


def _uniform(r: ICRReranker):
    """Zero queries and keys: every token attends equally to itself and everything before it."""
    import torch

    with torch.no_grad():
        for attn in r._attention_layers():
            for proj in (attn.q_proj, attn.k_proj):
                proj.weight.zero_()
                if proj.bias is not None:
                    proj.bias.zero_()


@pytest.mark.parametrize("reverse", [True, False])
def test_uniform_attention_scores_passages_by_their_length_by_hand(tmp_path, reverse):
    """query_last: score = layers * heads * n_tokens * mean over query rows q of 1 / (q + 1)."""
    r = reranker_build("icr", path=tiny_lm.saved_model(tmp_path / "m"),
                       config={"scoring": "query_last", "reverse_doc_order": reverse})
    _uniform(r)
    docs = ["pear", "apple pear apple pear apple pear", "apple", "apple pear apple"]
    scores = r.score("what fruit", docs)
    order = docs[::-1] if reverse else docs
    text, spans, q_start = icr_prompt("what fruit", order)
    offsets = r.tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    q_rows = [i for i, (s, e) in enumerate(offsets) if i >= next(j for j, (a, b) in enumerate(offsets) if b > a and a >= q_start)]
    per_token = sum(1 / (q + 1) for q in q_rows) / len(q_rows)
    layers, heads = r.model.config.num_hidden_layers, r.model.config.num_attention_heads
    for doc, s in zip(docs, scores):
        span = spans[order.index(doc)]
        n = len([i for i, (a, b) in enumerate(offsets) if b > a and span[0] <= a < span[1]])
        assert s == pytest.approx(layers * heads * n * per_token, rel=1e-4)
    assert [i for i, _ in r.rank("what fruit", docs, doc_ids=list("abcd"))][:2] == ["b", "d"]  # the longest first
    assert r.cost.calls == 2 and r.cost.tokens_in == 2 * len(offsets)  # score() and rank(): one pass each


def test_calibrated_scores_and_two_passes(tmp_path):
    r = reranker_build("icr", path=tiny_lm.saved_model(tmp_path / "m"), config={"retrieval_type": "IE"})
    docs = ["pear tart", "apple crumble with pear and more apple", "no"]
    scores = r.score("apple", docs)
    assert len(scores) == 3 and r.cost.calls == 2  # the query pass and the N/A pass
    text, spans, q = icr_prompt("apple", docs[::-1], retrieval_type="IE")
    na_text, na_spans, na_q = icr_prompt("N/A", docs[::-1], retrieval_type="IE")
    offsets, attn = r.token_attention(text, q)
    na_offsets, na_attn = r.token_attention(na_text, na_q)
    for doc, s in zip(docs, scores):
        idx = r._span_tokens(offsets, spans[docs[::-1].index(doc)])
        assert s == pytest.approx(icr_calibrated(attn[idx], na_attn[idx]), abs=1e-6)
    with pytest.raises(TypeError, match="whole list"):
        r.score_pairs([("q", "d")])
