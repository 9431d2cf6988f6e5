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

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from .groups import groups_rng, query_groups, query_passages
from .lora import CONFIG_FILE, META_FILE, NullReporter, Reporter, TrainResult, _progress_callback_class, device_settings
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
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    reporter = reporter or NullReporter()
    if not rows:
        raise ValueError("the dataset version has no members to train on")
    out = Path(config.output_dir)
    ckpt_dir, final_dir = out / "checkpoints", out / "final"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
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
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.accumulation_steps,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of the total steps in transformers 5
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        bf16=dev["bf16"],
        use_cpu=not dev["cuda"],
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=not foreground,
        dataloader_num_workers=0,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
    )
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.exists() else None
    callback = _progress_callback_class()(reporter, resumed_from=Path(last).name if last else "")
    callback.global_batch = config.global_batch_size
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                         callbacks=[callback, *extra_callbacks])
    if not foreground:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    if last:
        reporter.log(f"resuming from {Path(last).name}")
    output = trainer.train(resume_from_checkpoint=last)
    state = trainer.state
    metrics = dict(callback.metrics)
    metrics["train_loss"] = float(output.training_loss) if output.training_loss is not None else None
    metrics["triples"] = len(triples)
    result = TrainResult(
        output_dir=str(final_dir), global_step=state.global_step, total_steps=state.max_steps,
        train_loss=metrics["train_loss"], cancelled=callback.cancelled, resumed_from=metrics.get("resumed_from", ""),
        metrics=metrics,
    )
    if callback.cancelled:
        reporter.log(f"cancelled at step {state.global_step}/{state.max_steps}")
        return result
    if trainer.is_world_process_zero():
        model.save(str(final_dir))  # modules.json, pooling, the transformer and its tokenizer
        config.save(final_dir / CONFIG_FILE)
        (final_dir / META_FILE).write_text(json.dumps({
            "backbone": config.backbone, "base_model": config.base_model, "dataset_hash": config.dataset_hash,
            "dataset_version_id": config.dataset_version_id, "global_step": state.global_step,
            "train_loss": metrics["train_loss"], "hyperparameters": config.hyperparameters(),
            "triples": len(triples), "prompt": "embedding (cosine)",
        }, indent=2))
        reporter.log(f"saved to {final_dir}")
    return result
