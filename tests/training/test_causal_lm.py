"""The causal-LM (Rank1/LimRank) backbone on a tiny Qwen2: tokenization, LoRA training, adapter loading, scoring."""
from __future__ import annotations

import json
import math


from tests.training.conftest import reasoning_rows
from training import lora
from training.presets import TrainingConfig, config_build


def _config(base, out, **values) -> TrainingConfig:
    defaults = {"base_model": str(base), "output_dir": str(out), "max_steps": 4, "per_device_batch_size": 4,
                "gradient_accumulation_steps": 1, "save_steps": 2, "max_length": 128, "learning_rate": 1e-3}
    return config_build(preset="released", values={**defaults, **values})


def test_labels_cover_only_the_completion_and_truncation_keeps_the_answer(tiny_qwen_dir):
    tok = lora.tokenizer_load(str(tiny_qwen_dir), add_think_tokens=True)
    open_id, close_id = lora.think_token_ids(tok)
    true_id, false_id = lora.answer_token_ids(tok)
    assert open_id is not None and close_id is not None
    example = lora.causal_lm_example(reasoning_rows(1)[0])
    assert example["prompt"].startswith("Determine if the following passage is relevant to the query.")
    assert example["prompt"].endswith("\n<think>") and "Prefer answers with exact times." in example["prompt"]
    (row,) = lora.causal_lm_tokenize(tok, [example], max_length=512)
    prompt_len = sum(1 for label in row["labels"] if label == -100)
    assert row["input_ids"][prompt_len - 1] == open_id  # the prompt ends on <think>; loss starts after it
    assert all(label == -100 for label in row["labels"][:prompt_len])
    assert row["labels"][prompt_len:] == row["input_ids"][prompt_len:]
    assert row["input_ids"][-2:] == [close_id, true_id]

    long = dict(reasoning_rows(1)[0], passage_text="word " * 400, reasoning_trace="because " * 400)
    (cut,) = lora.causal_lm_tokenize(tok, [lora.causal_lm_example(long)], max_length=64)
    assert len(cut["input_ids"]) <= 64
    assert cut["input_ids"][-2:] == [close_id, true_id]  # the answer survives truncation
    assert open_id in cut["input_ids"] and cut["labels"][-1] == true_id


def test_tiny_qwen_lora_trains_saves_and_scores(tiny_qwen_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = _config(tiny_qwen_dir, tmp_path / "job")
    result = lora.train(config=config, rows=reasoning_rows(16))
    assert (result.global_step, result.total_steps) == (4, 4)
    assert not result.cancelled and math.isfinite(result.train_loss)
    assert [s for s, _ in result.metrics["loss"]] == [1, 2, 3, 4]
    final = tmp_path / "job" / "final"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", lora.CONFIG_FILE, lora.META_FILE):
        assert (final / name).exists(), name
    saved = TrainingConfig.load(final / lora.CONFIG_FILE)
    assert saved.learning_rate == 1e-3 and saved.lr_scheduler == "cosine" and saved.seed == 12345
    meta = json.loads((final / lora.META_FILE).read_text())
    assert meta["backbone"] == "causal-lm" and meta["hyperparameters"]["lora_r"] == 32

    tok = lora.tokenizer_load(str(final), add_think_tokens=False, padding_side="left")
    base = AutoModelForCausalLM.from_pretrained(str(tiny_qwen_dir))
    base.resize_token_embeddings(len(tok), mean_resizing=False)
    model = PeftModel.from_pretrained(base, str(final)).eval()
    # Training moved the LoRA weights away from their zero initialisation.
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(torch.count_nonzero(p) > 0 for p in lora_b)
    details = lora.causal_lm_score_pairs(
        model, tok, [("how long should eggs boil", "Boiling eggs Hard-boiled eggs need 10 minutes.")],
        max_new_tokens=6, return_details=True,
    )
    assert len(details) == 1 and 0.0 <= details[0]["score"] <= 1.0
    assert details[0]["how"] in ("answered", "forced")


def test_model_that_learned_the_format_answers_after_think_close(tiny_qwen_dir, tmp_path):
    """Overfit one short example: greedy generation closes </think>, and p(true) is read at the answer position."""
    rows = [dict(reasoning_rows(1)[0], reasoning_trace="ok.")] * 4
    config = _config(tiny_qwen_dir, tmp_path / "fit", max_steps=40, learning_rate=2e-2, warmup_ratio=0.0,
                     lr_scheduler="constant", save_steps=1000, lora_dropout=0.0)
    result = lora.train(config=config, rows=rows)
    model, tok, backbone = lora.reranker_load(result.output_dir)
    assert backbone == "causal-lm"
    row = rows[0]
    query = f"{row['query_text']} {row['instruction']}".strip()
    (detail,) = lora.causal_lm_score_pairs(
        model, tok, [(query, f"{row['passage_title']} {row['passage_text']}")], max_new_tokens=12, return_details=True)
    # p(true) is read at the answer position, or, as the reference does when " true" and " false" are not both
    # among that position's top-20 log-probabilities (an overfit model), by the forced step.
    assert detail["how"] in ("answered", "forced") and "</think>" in detail["text"]
    assert detail["score"] > 0.5
