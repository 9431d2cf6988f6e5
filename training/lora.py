"""Fine-tuning and scoring for the two backbones (torch / transformers / peft imported inside functions,
so the web process never loads them).

1. causal-lm: the Rank1/LimRank pointwise reasoning reranker. Prompt and completion come from
   `curation.protocol` (plain text, no chat template; completion = "\n" + reasoning + "\n</think> true|false"),
   loss on the completion only, LoRA via peft. Scoring: `causal_lm_score_pairs`, the protocol's rule fed by
   transformers (`causal_lm_generate` / `causal_lm_force`).
2. cross-encoder: AutoModelForSequenceClassification(num_labels=1) on (query, passage) pairs; score =
   sigmoid(logit). Loss `bce`: binary cross-entropy on each pair. Loss `listwise`: localized contrastive
   estimation (Gao, Dai & Callan, ECIR 2021): softmax cross-entropy over the logits of a group of one positive
   and `group_size - 1` negatives of its query (`training.groups.listwise_groups`), the positive as target.

Why transformers' Trainer and not TRL's SFTTrainer: TRL 1.16 appends EOS to every prompt-completion row and
finds the completion boundary by re-tokenizing prompt+completion; here the prompt ends on the `<think>` token,
so we tokenize prompt and completion apart, mask the prompt's labels (-100) ourselves, and truncate so the
answer tokens are never cut. The cross-encoder then shares the same loop, callbacks, checkpoints and resume.

Nothing here touches Django: progress goes through a `Reporter` that the caller supplies.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

from curation import protocol
from curation.protocol import THINK_CLOSE, THINK_OPEN, passage_join, query_with_instruction

from .groups import listwise_groups
from .presets import TrainingConfig

CONFIG_FILE = "training_config.json"
META_FILE = "limrank_artifact.json"
# Tokens kept at the end of a truncated prompt (the "\n<think>" line) and of a truncated completion (the answer).
PROMPT_TAIL_TOKENS = 8
COMPLETION_TAIL_TOKENS = 16


class Reporter(Protocol):
    """What the training loop tells its caller; `progress` returns False to stop (cancel)."""

    def progress(self, *, step: int, total: int, metrics: dict[str, Any]) -> bool: ...

    def log(self, line: str) -> None: ...


class NullReporter:
    def progress(self, *, step, total, metrics):
        return True

    def log(self, line):
        pass


@dataclass
class TrainResult:
    output_dir: str
    global_step: int
    total_steps: int
    train_loss: float | None
    cancelled: bool = False
    resumed_from: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- examples


def causal_lm_example(row: dict[str, Any]) -> dict[str, str]:
    """A DatasetVersionMember snapshot -> {"prompt", "completion"}: the export's training row, read as
    LLaMA-Factory reads it (so export, training and inference share one text)."""
    ex = protocol.training_example(
        query=row["query_text"], passage_title=row.get("passage_title", ""), passage_text=row["passage_text"],
        reasoning=row.get("reasoning_trace", ""), label=bool(row["label"]), instruction=row.get("instruction", ""))
    return {"prompt": protocol.training_prompt(ex), "completion": ex["output"]}


def cross_encoder_example(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "query": query_with_instruction(row["query_text"], row.get("instruction", "")),
        "passage": passage_join(row.get("passage_title", ""), row["passage_text"]),
        "label": 1.0 if row["label"] else 0.0,
    }


def _truncate(ids: list[int], budget: int, tail: int) -> list[int]:
    """Keep the head and the last `tail` tokens: the `<think>` line of a prompt, the answer of a completion."""
    if len(ids) <= budget:
        return ids
    if budget <= tail:
        return ids[-budget:]
    return ids[: budget - tail] + ids[-tail:]


def _split_budget(prompt_len: int, completion_len: int, max_length: int) -> tuple[int, int]:
    """LLaMA-Factory's rule for sharing the cutoff between source and target (infer_seqlen)."""
    if completion_len * 2 < max_length:
        max_completion = max_length
    elif prompt_len * 2 < max_length:
        max_completion = max_length - prompt_len
    else:
        max_completion = int(max_length * completion_len / (prompt_len + completion_len))
    completion_budget = min(max_completion, completion_len)
    prompt_budget = min(max(max_length - completion_budget, 0), prompt_len)
    return prompt_budget, completion_budget


def _prefix_ids(tokenizer) -> list[int]:
    # No chat template: Qwen has no BOS; a tokenizer that defines one gets it once at the start.
    return [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None else []


def causal_lm_tokenize(tokenizer, examples: Sequence[dict[str, str]], max_length: int) -> list[dict[str, list[int]]]:
    prefix = _prefix_ids(tokenizer)
    prompts = tokenizer([e["prompt"] for e in examples], add_special_tokens=False)["input_ids"]
    completions = tokenizer([e["completion"] for e in examples], add_special_tokens=False)["input_ids"]
    rows = []
    for p, c in zip(prompts, completions):
        p = prefix + p
        p_budget, c_budget = _split_budget(len(p), len(c), max_length)
        p = _truncate(p, p_budget, PROMPT_TAIL_TOKENS)
        c = _truncate(c, c_budget, COMPLETION_TAIL_TOKENS)
        rows.append({"input_ids": p + c, "labels": [-100] * len(p) + c})
    return rows


def think_token_ids(tokenizer) -> tuple[int | None, int | None]:
    """Ids of `<think>`/`</think>` when each is a single token (after add_think_tokens), else None."""
    out = []
    for tag in (THINK_OPEN, THINK_CLOSE):
        ids = tokenizer.encode(tag, add_special_tokens=False)
        out.append(ids[0] if len(ids) == 1 else None)
    return out[0], out[1]


def answer_token_ids(tokenizer) -> tuple[int, int]:
    """First token of " true" and of " false" (leading space, as they follow `</think>`), as the reference reads them."""
    t = tokenizer.encode(protocol.TRUE_TOKEN, add_special_tokens=False)
    f = tokenizer.encode(protocol.FALSE_TOKEN, add_special_tokens=False)
    if not t or not f or t[0] == f[0]:
        raise ValueError("the tokenizer cannot tell ' true' from ' false' by their first token")
    return t[0], f[0]


# ----------------------------------------------------------------------------- device helpers


def device_settings(config: TrainingConfig) -> dict[str, Any]:
    """bf16 only where supported (CUDA with bf16); fp32 otherwise. One device per process under accelerate."""
    import torch

    cuda = torch.cuda.is_available()
    bf16 = bool(config.bf16 and cuda and torch.cuda.is_bf16_supported())
    out = {"cuda": cuda, "bf16": bf16, "dtype": torch.bfloat16 if bf16 else torch.float32, "device_map": None}
    if cuda:
        from accelerate import PartialState

        out["device_map"] = {"": PartialState().local_process_index}
    return out


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _any_rank(flag: bool) -> bool:
    """All ranks must stop together, or the others hang in their next collective."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    import torch
    from accelerate import PartialState

    t = torch.tensor([1 if flag else 0], device=PartialState().device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


# ----------------------------------------------------------------------------- progress callback


def _progress_callback_class():
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Reports step/total, loss, ETA, tokens/s to the reporter; stops when it answers False (cancel)."""

        def __init__(self, reporter: Reporter, *, min_interval: float = 2.0, resumed_from: str = ""):
            self.reporter = reporter
            self.min_interval = min_interval
            self.metrics: dict[str, Any] = {"loss": [], "resumed_from": resumed_from}
            self.cancelled = False
            self._t0 = time.monotonic()
            self._step0 = 0
            self._tokens0 = 0
            self._last_report = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self._t0 = time.monotonic()
            self._step0 = state.global_step
            self._tokens0 = state.num_input_tokens_seen or 0
            self.metrics["total_steps"] = state.max_steps
            # A resumed run brings back the loss history it already reported.
            self.metrics["loss"] = [[h["step"], h["loss"]] for h in state.log_history if "loss" in h]
            self._report(state, force=True)

        def _rates(self, state) -> None:
            elapsed = max(time.monotonic() - self._t0, 1e-9)
            steps = state.global_step - self._step0
            tokens = (state.num_input_tokens_seen or 0) - self._tokens0
            self.metrics["elapsed_seconds"] = round(elapsed, 2)
            if steps > 0:
                per_step = elapsed / steps
                self.metrics["seconds_per_step"] = round(per_step, 4)
                self.metrics["eta_seconds"] = round(per_step * max(state.max_steps - state.global_step, 0), 1)
                self.metrics["examples_per_second"] = round(steps * getattr(self, "global_batch", 1) / elapsed, 3)
            if tokens > 0:
                self.metrics["tokens_per_second"] = round(tokens / elapsed, 1)
            self.metrics["epoch"] = round(state.epoch or 0.0, 4)
            self.metrics["tokens_seen"] = int(state.num_input_tokens_seen or 0)
            import torch

            if torch.cuda.is_available():
                self.metrics["peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)

        def _report(self, state, *, force: bool = False) -> bool:
            now = time.monotonic()
            if _is_main_process() and (force or now - self._last_report >= self.min_interval):
                self._last_report = now
                self._rates(state)
                if not self.reporter.progress(step=state.global_step, total=state.max_steps, metrics=dict(self.metrics)):
                    self._cancel_seen = True
            return not getattr(self, "_cancel_seen", False)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs and _is_main_process():
                self.metrics["loss"].append([state.global_step, round(float(logs["loss"]), 6)])
                if "learning_rate" in logs:
                    self.metrics["learning_rate"] = float(logs["learning_rate"])
                self.reporter.log(
                    f"step {state.global_step}/{state.max_steps} loss {float(logs['loss']):.4f}"
                    + (f" lr {float(logs['learning_rate']):.3g}" if "learning_rate" in logs else "")
                )
            if "train_loss" in logs:
                self.metrics["train_loss"] = float(logs["train_loss"])

        def on_step_end(self, args, state, control, **kwargs):
            last = state.global_step >= state.max_steps
            keep_going = self._report(state, force=last or state.global_step % max(1, args.logging_steps) == 0)
            # Cancel checks on a fixed cadence, so every rank asks at the same step.
            if _any_rank(not keep_going):
                self.cancelled = True
                control.should_training_stop = True
                control.should_save = False

        def on_substep_end(self, args, state, control, **kwargs):
            self._report(state)  # heartbeat during long gradient accumulation

        def on_save(self, args, state, control, **kwargs):
            if _is_main_process():
                self.reporter.log(f"checkpoint saved at step {state.global_step}")

        def on_train_end(self, args, state, control, **kwargs):
            self._report(state, force=True)

    return ProgressCallback


# ----------------------------------------------------------------------------- data


class _ListDataset:
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def _causal_collator(pad_id: int):
    import torch

    def collate(batch):
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def _cross_collator(tokenizer, max_length: int):
    import torch

    def collate(batch):
        enc = tokenizer([b["query"] for b in batch], [b["passage"] for b in batch], padding=True,
                        truncation="longest_first", max_length=max_length, return_tensors="pt")
        enc["labels"] = torch.tensor([b["label"] for b in batch], dtype=torch.float32)
        return dict(enc)

    return collate


def _listwise_collator(tokenizer, max_length: int, group_size: int):
    """Groups -> their pairs flattened in group order (positive first); `labels` holds each group's target
    (index 0), so the Trainer counts groups, not pairs, as the items of a batch."""
    import torch

    def collate(batch):
        queries = [b["query"] for b in batch for _ in b["passages"]]
        passages = [p for b in batch for p in b["passages"]]
        if any(len(b["passages"]) != group_size for b in batch):
            raise ValueError(f"every listwise group must hold {group_size} passages")
        enc = tokenizer(queries, passages, padding=True, truncation="longest_first", max_length=max_length,
                        return_tensors="pt")
        enc["labels"] = torch.zeros(len(batch), dtype=torch.long)
        return dict(enc)

    return collate


def _listwise_loss_func(group_size: int):
    def loss(outputs, labels, num_items_in_batch=None):
        return _listwise_loss(outputs["logits"], labels, group_size=group_size, num_items_in_batch=num_items_in_batch)

    return loss


def _listwise_loss(logits, labels, *, group_size: int, num_items_in_batch=None):
    """Softmax cross-entropy of each group's logits against its positive; summed, divided by the groups of the
    whole (accumulated) batch, as `_bce_loss` divides by its pairs."""
    import torch.nn.functional as F

    grouped = logits.float().reshape(-1, group_size)
    loss = F.cross_entropy(grouped, labels.long(), reduction="sum")
    denominator = num_items_in_batch if num_items_in_batch is not None else labels.numel()
    return loss / denominator


def _bce_loss(outputs, labels, num_items_in_batch=None):
    import torch.nn.functional as F

    logits = outputs["logits"].squeeze(-1).float()
    loss = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum")
    denominator = num_items_in_batch if num_items_in_batch is not None else labels.numel()
    return loss / denominator


# ----------------------------------------------------------------------------- loading


def _tokenizer_class(path: str):
    """The class named in a local tokenizer_config.json: transformers 5's AutoTokenizer otherwise picks the
    model type's class (a qwen2 config forces Qwen2Tokenizer even when another tokenizer was saved with it)."""
    from transformers import AutoTokenizer

    cfg = Path(path) / "tokenizer_config.json"
    if cfg.exists():
        name = json.loads(cfg.read_text()).get("tokenizer_class")
        if name:
            from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

            cls = tokenizer_class_from_name(name)
            if cls is not None:
                return cls
    return AutoTokenizer


def tokenizer_load(path: str, *, add_think_tokens: bool, padding_side: str = "right"):
    tok = _tokenizer_class(path).from_pretrained(path)
    if add_think_tokens:
        tok.add_tokens([THINK_OPEN, THINK_CLOSE], special_tokens=True)
    if tok.pad_token is None:
        # Qwen base tokenizers define <|endoftext|> as pad; others fall back to EOS.
        if tok.eos_token is None:
            raise ValueError(f"tokenizer of {path} has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def _causal_model_for_training(config: TrainingConfig, tokenizer, dev: dict):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(config.base_model, dtype=dev["dtype"], device_map=dev["device_map"])
    new_ids = [i for i in think_token_ids(tokenizer) if i is not None] if config.add_think_tokens else []
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    trainable_tokens = _trainable_token_targets(model, new_ids)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    targets = config.lora_target_modules.strip()
    target_modules = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=target_modules, task_type="CAUSAL_LM", bias="none",
        # The added <think>/</think> rows are trained and saved with the adapter (not the whole embedding matrix).
        trainable_token_indices=trainable_tokens,
    )
    return get_peft_model(model, lora)


def _trainable_token_targets(model, ids: list[int]):
    """The rows of the added tokens in the input embedding and, when it is not tied, in the LM head too:
    the model must learn to read `<think>` and to write `</think>` (LLaMA-Factory trains both whole matrices
    when it resizes the vocabulary; training the two rows is the same idea at a fraction of the memory)."""
    if not ids:
        return None
    names = {module: name.rsplit(".", 1)[-1] for name, module in model.named_modules()}
    targets = {names[model.get_input_embeddings()]: list(ids)}
    output = model.get_output_embeddings()
    tied = getattr(model.config.get_text_config(), "tie_word_embeddings", False)
    if output is not None and not tied and output in names:
        targets[names[output]] = list(ids)
    return targets


def _cross_model_for_training(config: TrainingConfig, dev: dict):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        config.base_model, num_labels=1, dtype=dev["dtype"], device_map=dev["device_map"]
    )


# ----------------------------------------------------------------------------- training


def training_dirs(config: TrainingConfig) -> tuple[Path, Path]:
    """(checkpoints, final) under the job's output_dir; seeds everything before data and model are built."""
    from transformers import set_seed

    out = Path(config.output_dir)
    ckpt_dir, final_dir = out / "checkpoints", out / "final"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
    return ckpt_dir, final_dir


def training_arguments_common(config: TrainingConfig, *, ckpt_dir: Path, dev: dict, foreground: bool) -> dict:
    """The Trainer arguments every backbone shares (transformers' Trainer and sentence-transformers' subclass)."""
    return dict(
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
    )


def progress_callback_for(*, ckpt_dir: Path, reporter: Reporter, config: TrainingConfig):
    """(last checkpoint or None, the progress callback): a retried job resumes from the last checkpoint."""
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.exists() else None
    callback = _progress_callback_class()(reporter, resumed_from=Path(last).name if last else "")
    callback.global_batch = config.global_batch_size
    return last, callback


def trainer_run(trainer, *, callback, last, reporter: Reporter, foreground: bool, final_dir: Path,
                **extra_metrics) -> TrainResult:
    """Train (resuming from `last`) and sum up; progress goes to the job row, not stdout, unless in the foreground."""
    if not foreground:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    if last:
        reporter.log(f"resuming from {Path(last).name}")
    output = trainer.train(resume_from_checkpoint=last)
    state = trainer.state
    metrics = dict(callback.metrics)
    metrics["train_loss"] = float(output.training_loss) if output.training_loss is not None else None
    metrics.update(extra_metrics)
    result = TrainResult(
        output_dir=str(final_dir), global_step=state.global_step, total_steps=state.max_steps,
        train_loss=metrics["train_loss"], cancelled=callback.cancelled, resumed_from=metrics.get("resumed_from", ""),
        metrics=metrics,
    )
    if callback.cancelled:
        reporter.log(f"cancelled at step {state.global_step}/{state.max_steps}")
    return result


def artifact_meta_write(*, config: TrainingConfig, final_dir: Path, result: TrainResult, **extra) -> None:
    """training_config.json and limrank_artifact.json beside the saved model (the registry reads them)."""
    config.save(final_dir / CONFIG_FILE)
    (final_dir / META_FILE).write_text(json.dumps({
        "backbone": config.backbone, "base_model": config.base_model, "dataset_hash": config.dataset_hash,
        "dataset_version_id": config.dataset_version_id, "global_step": result.global_step,
        "train_loss": result.train_loss, "hyperparameters": config.hyperparameters(), **extra,
    }, indent=2))


def train(
    *,
    config: TrainingConfig,
    rows: Sequence[dict[str, Any]],
    reporter: Reporter | None = None,
    foreground: bool = False,
    extra_callbacks: Iterable[Any] = (),
) -> TrainResult:
    """Train `config.backbone` on dataset-version member rows; resumes from the last checkpoint in
    `output_dir/checkpoints` when there is one. Writes the result to `output_dir/final`."""
    from transformers import Trainer, TrainingArguments

    reporter = reporter or NullReporter()
    if not rows:
        raise ValueError("the dataset version has no members to train on")
    ckpt_dir, final_dir = training_dirs(config)
    dev = device_settings(config)
    reporter.log(
        f"backbone {config.backbone}, base {config.base_model}, {len(rows)} examples, device "
        f"{'cuda' if dev['cuda'] else 'cpu'}, dtype {'bf16' if dev['bf16'] else 'fp32'}, global batch "
        f"{config.global_batch_size} ({config.per_device_batch_size} × {config.accumulation_steps} accumulation × "
        f"{config.num_processes} processes)"
    )

    if config.backbone == "causal-lm":
        tokenizer = tokenizer_load(config.base_model, add_think_tokens=config.add_think_tokens)
        examples = [causal_lm_example(r) for r in rows]
        dataset = _ListDataset(causal_lm_tokenize(tokenizer, examples, config.max_length))
        collator = _causal_collator(tokenizer.pad_token_id)
        model = _causal_model_for_training(config, tokenizer, dev)
        loss_func = None
    elif config.backbone == "cross-encoder":
        tokenizer = tokenizer_load(config.base_model, add_think_tokens=False)
        if config.loss == "listwise":
            groups = listwise_groups(rows, seed=config.seed, group_size=config.group_size)
            reporter.log(f"listwise loss: {len(groups)} groups of {config.group_size} pairs (one positive each)")
            dataset = _ListDataset(groups)
            collator = _listwise_collator(tokenizer, config.max_length, config.group_size)
            loss_func = _listwise_loss_func(config.group_size)
        else:
            dataset = _ListDataset([cross_encoder_example(r) for r in rows])
            collator = _cross_collator(tokenizer, config.max_length)
            loss_func = _bce_loss
        model = _cross_model_for_training(config, dev)
    else:
        raise ValueError(f"unknown backbone {config.backbone!r}")
    reporter.log("model and data ready")

    args = TrainingArguments(
        **training_arguments_common(config, ckpt_dir=ckpt_dir, dev=dev, foreground=foreground),
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        ddp_find_unused_parameters=False if config.num_processes > 1 else None,
    )
    last, callback = progress_callback_for(ckpt_dir=ckpt_dir, reporter=reporter, config=config)
    trainer = Trainer(
        model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=tokenizer,
        compute_loss_func=loss_func, callbacks=[callback, *extra_callbacks],
    )
    result = trainer_run(trainer, callback=callback, last=last, reporter=reporter, foreground=foreground,
                         final_dir=final_dir)
    if result.cancelled:
        return result
    trainer.save_model(str(final_dir))  # adapter (peft) or full model, plus the tokenizer; main process only
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(final_dir))
        artifact_meta_write(
            config=config, final_dir=final_dir, result=result,
            prompt="rank1" if config.backbone == "causal-lm" else "cross-encoder pair",
            **({"loss": config.loss} if config.backbone == "cross-encoder" else {}))
        reporter.log(f"saved to {final_dir}")
    return result


def artifact_size(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- loading for scoring


def reranker_load(path: str | Path, *, backbone: str | None = None):
    """Load a trained artifact directory (or a base model) for scoring: returns (model, tokenizer, backbone)."""
    import torch

    path = Path(path)
    meta = json.loads((path / META_FILE).read_text()) if (path / META_FILE).exists() else {}
    backbone = backbone or meta.get("backbone") or "causal-lm"
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    device_map = "auto" if cuda else None
    if backbone == "cross-encoder":
        from transformers import AutoModelForSequenceClassification

        tok = tokenizer_load(str(path), add_think_tokens=False)
        model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=dtype, device_map=device_map)
    elif (path / "adapter_config.json").exists():
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        adapter = json.loads((path / "adapter_config.json").read_text())
        base_path = meta.get("base_model") or adapter["base_model_name_or_path"]
        tok = tokenizer_load(str(path), add_think_tokens=False, padding_side="left")
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype, device_map=device_map)
        if len(tok) > base.get_input_embeddings().weight.shape[0]:
            base.resize_token_embeddings(len(tok), mean_resizing=False)
        model = PeftModel.from_pretrained(base, str(path))
    else:
        from transformers import AutoModelForCausalLM

        tok = tokenizer_load(str(path), add_think_tokens=False, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, device_map=device_map)
    model.eval()
    return model, tok, backbone


def cross_encoder_score_pairs(model, tokenizer, pairs: Sequence[tuple[str, str]], *, batch_size: int = 32,
                              max_length: int = 512) -> list[float]:
    """sigmoid(logit) of a sequence-classification model with one label, per (query, passage)."""
    import torch

    device = next(model.parameters()).device
    scores: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            enc = tokenizer([q for q, _ in chunk], [p for _, p in chunk], padding=True, truncation="longest_first",
                            max_length=max_length, return_tensors="pt").to(device)
            logits = model(**enc).logits.float().squeeze(-1)
            scores.extend(torch.sigmoid(logits).tolist())
    return scores


def _prompt_ids(tokenizer, prompts: Sequence[str], limit: int) -> list[list[int]]:
    """Token ids as the reference's vLLM sees a prompt string (a BOS only where the tokenizer adds one); a prompt
    longer than the context keeps its head and its `<think>` tail."""
    prefix = _prefix_ids(tokenizer)
    ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    return [_truncate(prefix + row, limit, PROMPT_TAIL_TOKENS) for row in ids]


def _left_padded(rows: list[list[int]], pad_id: int, device):
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        attention[i, width - len(r):] = 1
    return input_ids.to(device), attention.to(device), width


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _stop_and_record_classes():
    from transformers import LogitsProcessor, StoppingCriteria

    class StopOnStrings(StoppingCriteria):
        """Stops a row once its generated text contains a stop string: the reference stops on the strings
        "</think> true" / "</think> false", whatever tokens they are made of (`</think>` may be several)."""

        def __init__(self, tokenizer, width: int, stops: Sequence[str], tail: int = 32):
            self.tokenizer, self.width, self.stops, self.tail = tokenizer, width, tuple(stops), tail
            self.stopped_at: dict[int, int] = {}

        def __call__(self, input_ids, scores, **kwargs):
            import torch

            gen = input_ids[:, self.width:]
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            for i in range(gen.shape[0]):
                if i in self.stopped_at:
                    done[i] = True
                    continue
                text = self.tokenizer.decode(gen[i, -self.tail:].tolist(), skip_special_tokens=False)
                if any(s in text for s in self.stops):
                    self.stopped_at[i] = gen.shape[1]
                    done[i] = True
            return done

    class TopLogprobs(LogitsProcessor):
        """Keeps the top-k log-probabilities of every step (what vLLM's `logprobs=20` returns), not the
        full logits: 8192 steps of a 150k vocabulary would not fit."""

        def __init__(self, k: int):
            self.k, self.steps = k, []

        def __call__(self, input_ids, scores):
            import torch

            values, ids = torch.log_softmax(scores.float(), dim=-1).topk(self.k, dim=-1)
            self.steps.append((values, ids))
            return scores

    return StopOnStrings, TopLogprobs


def causal_lm_generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = protocol.MAX_NEW_TOKENS,
                       context_size: int = protocol.CONTEXT_SIZE, batch_size: int = 8) -> list[protocol.Generation]:
    """Greedy generation with the protocol's stop strings; per prompt, the text and the top-20 log-probabilities
    of its last generated token. Prompts are batched by length so a batch's token budget fits them all."""
    import torch

    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    StopOnStrings, TopLogprobs = _stop_and_record_classes()
    device = next(model.parameters()).device
    pad_id = _pad_id(tokenizer)
    eos = tokenizer.eos_token_id
    # Greedy with nothing else: the model's own generation defaults (a repetition penalty, sampling) are not the
    # reference's, whose SamplingParams set only temperature 0.
    gen_config = GenerationConfig(do_sample=False, pad_token_id=pad_id, eos_token_id=eos)
    ids = _prompt_ids(tokenizer, prompts, context_size - 1)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
    out: list[protocol.Generation | None] = [None] * len(ids)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        input_ids, attention, width = _left_padded([ids[i] for i in chunk], pad_id, device)
        budget = min(max_new_tokens, context_size - width)
        if budget < 1:
            for i in chunk:
                out[i] = protocol.Generation(text="", last_logprobs=None)
            continue
        stop, record = StopOnStrings(tokenizer, width, protocol.STOP_STRINGS), TopLogprobs(protocol.TOP_LOGPROBS)
        with torch.inference_mode():
            seqs = model.generate(
                input_ids=input_ids, attention_mask=attention, generation_config=gen_config, max_new_tokens=budget,
                stopping_criteria=StoppingCriteriaList([stop]), logits_processor=LogitsProcessorList([record]),
            )
        generated = seqs[:, width:].tolist()
        for row, i in enumerate(chunk):
            toks = generated[row]
            if row in stop.stopped_at:
                last = stop.stopped_at[row] - 1
            elif eos is not None and eos in toks:
                last = toks.index(eos)  # the end-of-sequence token is the last generated one, as in vLLM
            else:
                last = len(toks) - 1
            if last < 0 or last >= len(record.steps):
                out[i] = protocol.Generation(text="", last_logprobs=None)
                continue
            values, top = record.steps[last]
            logprobs = dict(zip(top[row].tolist(), values[row].tolist()))
            kept = [t for t in toks[:last + 1] if t != eos and t != pad_id]
            out[i] = protocol.Generation(text=tokenizer.decode(kept, skip_special_tokens=False), last_logprobs=logprobs)
    return [g for g in out if g is not None]


def causal_lm_force(model, tokenizer, prompts: Sequence[str], *, context_size: int = protocol.CONTEXT_SIZE,
                    batch_size: int = 8) -> list[dict[int, float] | None]:
    """One next token restricted to " true"/" false" after each prompt: their log-probabilities (None on failure)."""
    import torch

    true_id, false_id = answer_token_ids(tokenizer)
    device = next(model.parameters()).device
    pad_id = _pad_id(tokenizer)
    ids = _prompt_ids(tokenizer, prompts, context_size)
    out: list[dict[int, float] | None] = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        try:
            input_ids, attention, _ = _left_padded(chunk, pad_id, device)
            # Left padding: positions count real tokens only, or a padded row scores differently from alone.
            positions = (attention.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions).logits[:, -1, :]
            pair = torch.log_softmax(logits.float()[:, [true_id, false_id]], dim=-1).tolist()
            out += [{true_id: t, false_id: f} for t, f in pair]
        except Exception:  # noqa: BLE001 - the reference scores a pair it cannot force 0.5
            out += [None] * len(chunk)
    return out


def causal_lm_score_pairs(
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    mode: str = "generate",
    max_new_tokens: int = protocol.MAX_NEW_TOKENS,
    context_size: int = protocol.CONTEXT_SIZE,
    batch_size: int = 8,
    return_details: bool = False,
):
    """Rank1/LimRank scores of (query, passage) pairs with a causal LM (plain or a PeftModel), by the rule in
    `curation.protocol.pointwise_scores` (`mode="direct"`: no reasoning, `protocol.direct_scores`).

    `query` is the query as the model should see it (instruction appended, task prompt applied: see
    `protocol.prompt_build`); `passage` is `protocol.passage_join(title, text)`. Returns floats, or dicts with
    score, text and how it was read (answered | forced | fallback | direct)."""
    true_id, false_id = answer_token_ids(tokenizer)
    prompts = [protocol.pointwise_prompt(q, p) for q, p in pairs]

    def force(texts):
        return causal_lm_force(model, tokenizer, texts, context_size=context_size, batch_size=batch_size)

    if mode == "direct":
        results = protocol.direct_scores(prompts, force=force, true_id=true_id, false_id=false_id)
    elif mode == "generate":
        def generate(texts):
            return causal_lm_generate(model, tokenizer, texts, max_new_tokens=max_new_tokens,
                                      context_size=context_size, batch_size=batch_size)

        results = protocol.pointwise_scores(prompts, generate=generate, force=force, true_id=true_id, false_id=false_id)
    else:
        raise ValueError(f"mode must be 'generate' or 'direct', not {mode!r}")
    if return_details:
        return [{"score": r.score, "how": r.how, "text": r.text} for r in results]
    return [r.score for r in results]
