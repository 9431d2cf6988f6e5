"""The embedding (bi-encoder) backbone: a sentence-transformers model fine-tuned on dataset-version members.

Loss: MultipleNegativesRankingLoss (still the name in sentence-transformers 6.2): for each (query, positive,
hard negative) triple, the query must pick its positive among every positive and hard negative of the batch
(in-batch negatives plus the example's own hard negatives). The batch sampler keeps one text out of a batch
twice (`NO_DUPLICATES`), so a query whose positive is paired with several negatives never meets its own positive
as an in-batch "negative".

Triples come from the members: per query (text + instruction), each positive (label true) is paired with each
of the query's negatives (label false), in a seeded order. A query without negatives borrows one from another
query (seeded), so every positive is used.

Same shape as `training.lora.train`: a `Reporter` gets progress, checkpoints land in output_dir/checkpoints (a
retried job resumes from the last one), the result in output_dir/final with `training_config.json` and
`limrank_artifact.json`. The `embedding` reranker (evaluation.rerankers.embedding) scores it. torch and
sentence-transformers are imported inside functions (the web process never loads them).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from .groups import groups_rng, query_groups, query_passages
from .lora import (
    NullReporter, Reporter, TrainResult, artifact_meta_write, device_settings, progress_callback_for,
    trainer_run, training_arguments_common, training_dirs,
)
from .presets import TrainingConfig


def embedding_triples(rows: Sequence[dict[str, Any]], *, seed: int) -> list[dict[str, str]]:
    """Member rows -> [{"anchor", "positive", "negative"}], deterministic in (rows, seed)."""
    rng = groups_rng(seed=seed, namespace="limrank-embedding")
    groups = query_groups(query_passages(rows), rng, negatives=None, backbone="the embedding backbone")
    triples = [{"anchor": query, "positive": positive, "negative": negative}
               for query, positive, negatives in groups for negative in negatives]
    rng.shuffle(triples)
    return triples


def embedding_model_load(path: str, *, max_length: int | None = None, device: str | None = None):
    """A SentenceTransformer from a local directory (a trained artifact or the shipped MiniLM) or a hub id.
    A plain transformers checkpoint gets mean pooling (sentence-transformers' default)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device=device)
    if max_length:
        model.max_seq_length = int(max_length)
    return model


def train(
    *,
    config: TrainingConfig,
    rows: Sequence[dict[str, Any]],
    reporter: Reporter | None = None,
    foreground: bool = False,
    extra_callbacks: Iterable[Any] = (),
) -> TrainResult:
    """Fine-tune `config.base_model` as a bi-encoder on the members' triples; writes output_dir/final."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    reporter = reporter or NullReporter()
    if not rows:
        raise ValueError("the dataset version has no members to train on")
    ckpt_dir, final_dir = training_dirs(config)
    dev = device_settings(config)
    triples = embedding_triples(rows, seed=config.seed)
    reporter.log(
        f"backbone embedding, base {config.base_model}, {len(rows)} examples -> {len(triples)} triples, device "
        f"{'cuda' if dev['cuda'] else 'cpu'}, global batch {config.global_batch_size}, max length {config.max_length}"
    )
    model = embedding_model_load(config.base_model, max_length=config.max_length,
                                 device="cuda" if dev["cuda"] else "cpu")
    loss = MultipleNegativesRankingLoss(model)
    dataset = Dataset.from_list(triples)
    reporter.log("model and data ready")

    args = SentenceTransformerTrainingArguments(
        **training_arguments_common(config, ckpt_dir=ckpt_dir, dev=dev, foreground=foreground),
        batch_sampler=BatchSamplers.NO_DUPLICATES,
    )
    last, callback = progress_callback_for(ckpt_dir=ckpt_dir, reporter=reporter, config=config)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                         callbacks=[callback, *extra_callbacks])
    result = trainer_run(trainer, callback=callback, last=last, reporter=reporter, foreground=foreground,
                         final_dir=final_dir, triples=len(triples))
    if result.cancelled:
        return result
    if trainer.is_world_process_zero():
        model.save(str(final_dir))  # modules.json, pooling, the transformer and its tokenizer
        artifact_meta_write(config=config, final_dir=final_dir, result=result, triples=len(triples),
                            prompt="embedding (cosine)")
        reporter.log(f"saved to {final_dir}")
    return result
