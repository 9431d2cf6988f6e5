"""The embedding family: cosine of sentence-transformers embeddings, built from the table, on the shipped MiniLM."""
from __future__ import annotations

import pytest

from evaluation import services
from evaluation.models import RerankerModel
from evaluation.rerankers import reranker_build, strategy_available
from evaluation.rerankers.embedding import EmbeddingReranker
from tests.evaluation.conftest import minilm_path

QUERY = "Smoking causes lung cancer."
RELEVANT = "Tobacco smoke and lung carcinoma: a cohort study of smokers and lung cancer incidence."
UNRELATED = "Dietary fibre intake and the gut microbiome of infants in rural villages."


def test_the_table_builds_it_and_it_scores_a_real_minilm():
    assert strategy_available("embedding")
    reranker = reranker_build("embedding", path=minilm_path(), config={"batch_size": 2, "max_length": 64})
    assert isinstance(reranker, EmbeddingReranker)
    assert (reranker.batch_size, reranker.model.max_seq_length) == (2, 64)
    assert reranker.n_parameters > 20_000_000  # MiniLM-L6: 22.7M, not a smoke model
    scores = reranker.score(QUERY, [RELEVANT, UNRELATED])
    assert scores[0] > scores[1] and all(-1.0 <= s <= 1.0 for s in scores)
    # Each distinct text is encoded once, and passages are remembered across calls.
    assert reranker.cost.calls == 3 and reranker.cost.tokens_in > 0
    again = reranker.score_pairs([(QUERY, RELEVANT), ("another query", RELEVANT)])
    assert reranker.cost.calls == 5 and again[0] == pytest.approx(scores[0], abs=1e-5)
    reranker.close()


def test_no_path_means_the_shipped_minilm():
    reranker = reranker_build("embedding")
    assert reranker.path == minilm_path()
    assert reranker.score_pairs([]) == []


@pytest.mark.django_db
def test_an_embedding_artifact_becomes_an_embedding_reranker_model():
    from training.models import ModelArtifact

    artifact = ModelArtifact.objects.create(name="emb-art", kind=ModelArtifact.Kind.EMBEDDING, path=minilm_path(),
                                            base_model=minilm_path(), hyperparameters={"max_length": 128})
    model = services.reranker_model_from_artifact(artifact=artifact)
    assert model.kind == RerankerModel.Kind.EMBEDDING and model.path == minilm_path()
    assert model.config == {"backend": "sentence-transformers", "max_length": 128}
