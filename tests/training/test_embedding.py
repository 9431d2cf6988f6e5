"""The embedding (bi-encoder) backbone: triples from members, a MiniLM fine-tuned on a handful of them, the presets."""
from __future__ import annotations

import pytest

from tests.training.conftest import make_dataset_version, scifact_rows
from training import embedding
from training.models import ModelArtifact, TrainingJob
from training.presets import config_build, minilm_path


def _row(query, passage, label, instruction=""):
    return {"query_text": query, "instruction": instruction, "passage_title": "", "passage_text": passage,
            "reasoning_trace": "", "label": label}


def test_triples_pair_each_positive_with_each_negative_of_its_query():
    rows = [_row("q1", "p1", True), _row("q1", "n1", False), _row("q1", "n2", False),
            _row("q2", "p2", True), _row("q3", "n3", False)]
    triples = embedding.embedding_triples(rows, seed=1)
    assert sorted((t["anchor"], t["positive"], t["negative"]) for t in triples if t["anchor"] == "q1") == [
        ("q1", "p1", "n1"), ("q1", "p1", "n2")]
    # q2 has no negative of its own: it borrows one from another query; q3 has no positive and makes no triple.
    (q2,) = [t for t in triples if t["anchor"] == "q2"]
    assert q2["positive"] == "p2" and q2["negative"] in {"n1", "n2", "n3"}
    assert len(triples) == 3 and triples == embedding.embedding_triples(rows, seed=1)


def test_triples_need_a_positive_and_a_negative():
    with pytest.raises(ValueError, match="positive"):
        embedding.embedding_triples([_row("q", "n", False)], seed=0)
    with pytest.raises(ValueError, match="negative"):
        embedding.embedding_triples([_row("q", "p", True)], seed=0)


def test_presets_cpu_demo_is_the_embedding_one_and_the_cross_encoder_demo_is_renamed():
    emb = config_build(preset="cpu-demo")
    ce = config_build(preset="cpu-demo-cross-encoder")
    # The settings bench/loop_cpu.py measured above BM25 on held-out queries (bench/RESULTS.md, Session 11).
    assert emb.backbone == "embedding" and emb.base_model == minilm_path()
    assert (emb.learning_rate, emb.epochs, emb.per_device_batch_size) == (1e-4, 2.0, 32)
    assert ce.backbone == "cross-encoder" and ce.base_model == minilm_path() and ce.loss == "listwise"


def _margin(model, rows):
    """Mean over queries of cos(query, its positives) - cos(query, its negatives)."""
    by_query = {}
    for r in rows:
        by_query.setdefault(r["query_text"], ([], []))[0 if r["label"] else 1].append(
            f"{r['passage_title']} {r['passage_text']}")
    margins = []
    for query, (pos, neg) in by_query.items():
        if not pos or not neg:
            continue
        q = model.encode([query], convert_to_tensor=True, normalize_embeddings=True)
        p = model.encode(pos, convert_to_tensor=True, normalize_embeddings=True)
        n = model.encode(neg, convert_to_tensor=True, normalize_embeddings=True)
        margins.append(float((q @ p.T).mean() - (q @ n.T).mean()))
    assert margins
    return sum(margins) / len(margins)


def test_training_on_a_handful_of_examples_lowers_the_loss_and_widens_the_margin(shared_data, tmp_path):
    rows = scifact_rows(shared_data / "scifact", n_positives=8, negatives_per_positive=1, seed=3)
    config = config_build(preset="cpu-demo", values={
        "output_dir": str(tmp_path / "emb"), "max_length": 48, "per_device_batch_size": 4, "epochs": 4.0,
        "learning_rate": 1e-4, "warmup_ratio": 0.0, "save_steps": 1000})
    before = _margin(embedding.embedding_model_load(minilm_path(), max_length=48), rows)
    result = embedding.train(config=config, rows=rows)
    losses = [loss for _, loss in result.metrics["loss"]]
    assert result.metrics["triples"] >= 8 and result.global_step == result.total_steps >= 8  # batch 4 × 4 epochs
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, losses
    after = _margin(embedding.embedding_model_load(result.output_dir, max_length=48), rows)
    assert after > before + 0.01, (before, after)


@pytest.mark.django_db
def test_a_training_job_registers_an_embedding_artifact_and_reranker_model(shared_data, tmp_path):
    from evaluation.models import RerankerModel
    from limrank_app.jobs import job_claim
    from training.services import training_job_create, training_job_execute

    version = make_dataset_version(scifact_rows(shared_data / "scifact", n_positives=4, seed=5))
    job = training_job_create(dataset_version=version, preset="cpu-demo", enqueue=False,
                              overrides={"max_length": 32, "per_device_batch_size": 4, "max_steps": 1})
    assert job.backbone == TrainingJob.Backbone.EMBEDDING
    assert job_claim(TrainingJob, pk=job.pk)
    job = training_job_execute(job=TrainingJob.objects.get(pk=job.pk))
    assert job.status == "succeeded", job.error
    assert job.artifact.kind == ModelArtifact.Kind.EMBEDDING
    model = RerankerModel.objects.get(artifact=job.artifact)
    assert model.kind == RerankerModel.Kind.EMBEDDING and model.config["max_length"] == 32
    assert model.config["backend"] == "sentence-transformers"
