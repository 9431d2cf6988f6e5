"""The scoring rule on the transformers backend, with a tokenizer where `</think>` is several tokens.

A tiny Qwen2 whose last-position logits are scripted by the tokens before them (so what it writes, and the
log-probabilities of " true"/" false" where it answers, are known exactly) runs through
`training.lora.causal_lm_score_pairs`, the backend the evaluation's transformers reranker uses."""
from __future__ import annotations

import math

import pytest

from curation import protocol
from training import lora
from training.tiny import byte_level_tokenizer, tiny_qwen

PROMPT_Q, PROMPT_P = "do eggs float", "Fresh eggs sink in water; old ones float."


def _scripted_class():
    import torch
    from transformers import Qwen2ForCausalLM

    class Scripted(Qwen2ForCausalLM):
        """Next-token logits chosen by the longest matching suffix of the sequence so far (rules: suffix ->
        {token: logit}); every other token gets 0, and " true"/" false" -5 unless a rule names them."""

        rules: list[tuple[tuple[int, ...], dict[int, float]]] = []
        low: tuple[int, ...] = ()

        def forward(self, input_ids=None, **kwargs):
            out = super().forward(input_ids=input_ids, **kwargs)
            if input_ids.shape[1] > 1 or getattr(self, "_seen", None) is None or self._seen.shape[0] != input_ids.shape[0]:
                self._seen = input_ids.clone()  # a new prompt (prefill) or a single forward pass
            else:
                self._seen = torch.cat([self._seen, input_ids], dim=1)  # one generated token at a time
            logits = torch.zeros_like(out.logits[:, -1, :])
            logits[:, list(self.low)] = -5.0
            for row in range(self._seen.shape[0]):
                seq = tuple(self._seen[row].tolist())
                for suffix, target in sorted(self.rules, key=lambda r: -len(r[0])):
                    if seq[-len(suffix):] == suffix:
                        for tok, value in target.items():
                            logits[row, tok] = value
                        break
            out.logits = out.logits.clone()
            out.logits[:, -1, :] = logits
            return out

    return Scripted


@pytest.fixture(scope="module")
def tok():
    t = byte_level_tokenizer([PROMPT_Q, PROMPT_P, protocol.INSTRUCTION, "It is related. It is not", "ok."])
    assert len(t.encode(protocol.THINK_CLOSE, add_special_tokens=False)) > 1  # the case the issue names
    return t


def _ids(tok, text):
    return tuple(tok.encode(text, add_special_tokens=False))


def _model(tok, rules):
    model = tiny_qwen(tok, model_class=_scripted_class())
    t, f = lora.answer_token_ids(tok)
    model.rules, model.low = rules, (t, f)
    return model, t, f


def _writes(tok, start: str, text: str):
    """Rules that make the model write `text` after a sequence ending in `start`."""
    head, body = _ids(tok, start), _ids(tok, text)
    return [(head + body[:k], {body[k]: 10.0}) for k in range(len(body))]


def test_multi_token_think_close_stops_on_the_string_and_reads_the_answer_position(tok):
    prompt = protocol.pointwise_prompt(PROMPT_Q, PROMPT_P)
    completion = "\nok.\n</think> true"
    rules = _writes(tok, "<think>", completion[: -len(" true")])
    model, t, f = _model(tok, rules)
    closed = _ids(tok, "<think>" + completion[: -len(" true")])
    model.rules = rules + [(closed, {t: 3.0, f: 1.0}), (closed + (t,), {f: 10.0})]  # would go on: must stop
    (d,) = lora.causal_lm_score_pairs(model, tok, [(PROMPT_Q, PROMPT_P)], max_new_tokens=40, return_details=True)
    assert d["how"] == "answered"
    assert d["text"] == completion  # stopped right after "</think> true", several tokens for `</think>`
    assert d["score"] == pytest.approx(math.exp(3) / (math.exp(3) + math.exp(1)), abs=1e-5)
    assert prompt.endswith("<think>")


def test_reasoning_that_never_closes_is_cut_and_the_answer_forced(tok):
    prompt = protocol.pointwise_prompt(PROMPT_Q, PROMPT_P)
    rules = _writes(tok, "<think>", "\nIt is related. It is not")
    model, t, f = _model(tok, rules)
    model.rules = rules + [(_ids(tok, " not"), {_ids(tok, " not")[0]: 10.0})]  # " not not not ..." forever
    forced = protocol.forced_prompt(prompt, "\nIt is related. It is not not not")
    assert forced.endswith("<think>\nIt is related.\n</think>")
    model.rules.append((_ids(tok, forced)[-6:], {t: 1.0, f: 3.0}))
    (d,) = lora.causal_lm_score_pairs(model, tok, [(PROMPT_Q, PROMPT_P)], max_new_tokens=10, return_details=True)
    assert d["how"] == "forced"
    assert protocol.THINK_CLOSE not in d["text"] and d["text"].startswith("\nIt is related. It is not not")
    assert d["score"] == pytest.approx(math.exp(1) / (math.exp(1) + math.exp(3)), abs=1e-5)


def test_direct_mode_reads_the_answer_after_an_empty_reasoning(tok):
    prompt = protocol.pointwise_prompt(PROMPT_Q, PROMPT_P)
    model, t, f = _model(tok, [])
    model.rules = [(_ids(tok, protocol.direct_prompt(prompt))[-6:], {t: 2.0, f: 0.0})]
    (d,) = lora.causal_lm_score_pairs(model, tok, [(PROMPT_Q, PROMPT_P)], mode="direct", return_details=True)
    assert d["how"] == "direct" and d["score"] == pytest.approx(math.exp(2) / (math.exp(2) + 1), abs=1e-5)


def test_the_rule_falls_back_to_one_half_and_keeps_order():
    """The shared rule with a backend stub: answered, forced, and a forced step that fails (0.5)."""
    def generate(prompts):
        return [protocol.Generation("\nyes.\n</think>", {1: -0.5, 2: -1.5}),  # answered
                protocol.Generation("\nhalf a thought. and", {1: -0.1}),       # " false" missing: forced
                protocol.Generation("", None)]                                  # nothing: forced, fails
    seen = []

    def force(prompts):
        seen.extend(prompts)
        return [{1: -2.0, 2: -1.0}, None]

    out = protocol.pointwise_scores(["A<think>", "B<think>", "C<think>"], generate=generate, force=force, true_id=1, false_id=2)
    assert [o.how for o in out] == ["answered", "forced", "fallback"]
    assert out[0].score == pytest.approx(1 / (1 + math.exp(-1)))
    assert out[1].score == pytest.approx(1 / (1 + math.exp(1)))
    assert out[2].score == protocol.FALLBACK_SCORE
    assert seen == ["B<think>\nhalf a thought.\n</think>", "C<think>\n\n</think>"]
