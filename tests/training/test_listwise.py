"""The cross-encoder's listwise loss (localized contrastive estimation): groups from members, the loss's value,
the `loss` / `group_size` settings."""
from __future__ import annotations

import math

import pytest

from training import lora
from training.groups import listwise_groups
from training.presets import ConfigError, TrainingConfig, config_build


def _row(query, passage, label, instruction=""):
    return {"query_text": query, "instruction": instruction, "passage_title": "", "passage_text": passage,
            "reasoning_trace": "", "label": label}


ROWS = [_row("q1", "p1", True), _row("q1", "p1b", True), *(_row("q1", f"n1-{i}", False) for i in range(5)),
        _row("q2", "p2", True), _row("q2", "n2-0", False),
        _row("q3", "n3-0", False), _row("q3", "n3-1", False)]


def test_groups_use_every_positive_once_with_group_size_minus_one_negatives():
    groups = listwise_groups(ROWS, seed=3, group_size=4)
    assert groups == listwise_groups(ROWS, seed=3, group_size=4)  # deterministic in (rows, seed)
    assert sorted(g["passages"][0] for g in groups) == ["p1", "p1b", "p2"]  # one group per positive, positive first
    negatives = {r["passage_text"] for r in ROWS if not r["label"]}
    for g in groups:
        assert len(g["passages"]) == 4 and len(set(g["passages"])) == 4
        assert set(g["passages"][1:]) <= negatives
    by_positive = {g["passages"][0]: g for g in groups}
    # q1 has five negatives of its own: three of them, none borrowed.
    assert all(n.startswith("n1-") for n in by_positive["p1"]["passages"][1:])
    # q2 has one: it keeps it and borrows two from the other queries (q3's negatives count: q3 has no positive).
    assert by_positive["p2"]["passages"][1] == "n2-0"
    assert not any(n.startswith("n2-") for n in by_positive["p2"]["passages"][2:])
    # q3 has no positive: no group. The query text carries its instruction, as the model reads it.
    assert {g["query"] for g in groups} == {"q1", "q2"}
    assert listwise_groups(ROWS, seed=4, group_size=4) != groups


def test_groups_need_enough_negatives_and_a_positive():
    with pytest.raises(ValueError, match="negatives"):
        listwise_groups([_row("q", "p", True), _row("q", "n", False)], seed=0, group_size=3)
    with pytest.raises(ValueError, match="positive"):
        listwise_groups([_row("q", "n", False), _row("q", "m", False)], seed=0, group_size=2)
    with pytest.raises(ValueError, match="group_size"):
        listwise_groups(ROWS, seed=0, group_size=1)


def test_listwise_loss_golden_value():
    import torch

    # Two groups of three logits, the positive first: loss_i = logsumexp(group_i) - group_i[0].
    logits = torch.tensor([[2.0], [0.0], [-1.0], [0.0], [1.0], [1.0]])
    labels = torch.zeros(2, dtype=torch.long)
    g1 = math.log(math.exp(2) + math.exp(0) + math.exp(-1)) - 2  # 0.1698460
    g2 = math.log(math.exp(0) + 2 * math.exp(1)) - 0  # 1.8619948
    assert (g1 + g2) / 2 == pytest.approx(1.0159204, abs=1e-6)
    loss = lora._listwise_loss(logits, labels, group_size=3)
    assert float(loss) == pytest.approx(1.0159204, abs=1e-6)
    # Under gradient accumulation the Trainer passes the groups of the whole optimizer step.
    assert float(lora._listwise_loss(logits, labels, group_size=3, num_items_in_batch=4)) == pytest.approx(
        (g1 + g2) / 4, abs=1e-6)


def test_listwise_collator_flattens_groups_positive_first():
    from training.lora import _listwise_collator, tokenizer_load
    from training.presets import minilm_path

    tok = tokenizer_load(minilm_path(), add_think_tokens=False)
    groups = listwise_groups(ROWS, seed=3, group_size=4)[:2]
    batch = _listwise_collator(tok, 32, 4)(groups)
    assert batch["input_ids"].shape[0] == 8 and batch["labels"].tolist() == [0, 0]
    first = tok.decode(batch["input_ids"][4], skip_special_tokens=True)
    assert groups[1]["passages"][0] in first and groups[1]["query"] in first


def test_loss_setting_is_validated_per_field_and_recorded(tmp_path):
    assert TrainingConfig().loss == "bce"  # the default keeps the pointwise behaviour
    config = config_build(preset="cpu-demo-cross-encoder", values={"loss": "listwise", "group_size": "6"})
    assert (config.loss, config.group_size) == ("listwise", 6)
    assert config.hyperparameters()["loss"] == "listwise"
    saved = TrainingConfig.load(config.save(tmp_path / "training_config.json"))
    assert (saved.loss, saved.group_size) == ("listwise", 6)
    with pytest.raises(ConfigError) as bad:
        config_build(preset="cpu-demo-cross-encoder", values={"loss": "pairwise"})
    assert set(bad.value.errors) == {"loss"} and "bce, listwise" in bad.value.errors["loss"]
    with pytest.raises(ConfigError) as bad:
        config_build(preset="cpu-demo-cross-encoder", values={"loss": "listwise", "group_size": 1})
    assert set(bad.value.errors) == {"group_size"}
    for preset in ("released", "cpu-demo"):  # Rank1's causal LM and the bi-encoder have their own losses
        with pytest.raises(ConfigError) as bad:
            config_build(preset=preset, values={"loss": "listwise"})
        assert set(bad.value.errors) == {"loss"} and "cross-encoder" in bad.value.errors["loss"]
