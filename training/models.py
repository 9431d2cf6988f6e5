"""Training jobs (LoRA / cross-encoder fine-tuning on the gpu queue) and what they produce."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from limrank_app.jobs import JobState

# The paper's text (LimRank, arXiv 2510.23544): Qwen2.5-7B, LoRA r=32, alpha=64, lr 6e-5, batch 128, 5 epochs.
PAPER_HYPERPARAMETERS = {
    "lora_r": 32,
    "lora_alpha": 64,
    "lora_dropout": 0.05,
    "learning_rate": 6e-5,
    "effective_batch_size": 128,
    "per_device_batch_size": 4,
    "epochs": 5,
    "lr_scheduler": "linear",
    "warmup_ratio": 0.0,
    "max_length": 2500,
    "bf16": True,
    "seed": 12345,
    "save_steps": 50,
}


def paper_hyperparameters() -> dict:
    return dict(PAPER_HYPERPARAMETERS)


class TrainingJob(JobState):
    execute_task = "training.tasks.training_job_execute_task"

    class Backbone(models.TextChoices):
        CAUSAL_LM = "causal-lm", "Causal LM, pointwise reasoning (Rank1/LimRank)"
        CROSS_ENCODER = "cross-encoder", "Cross-encoder (sequence classification)"
        EMBEDDING = "embedding", "Bi-encoder (sentence-transformers embeddings)"

    name = models.CharField(max_length=200, blank=True)
    dataset_version = models.ForeignKey("curation.DatasetVersion", on_delete=models.PROTECT, related_name="training_jobs")
    base_model = models.CharField(max_length=500, default="Qwen/Qwen2.5-7B", help_text="hub id or local path")
    backbone = models.CharField(max_length=16, choices=Backbone.choices, default=Backbone.CAUSAL_LM)
    preset = models.CharField(max_length=32, blank=True, help_text="paper, released, rank1, custom")
    hyperparameters = models.JSONField(default=paper_hyperparameters)
    num_processes = models.PositiveSmallIntegerField(default=1, help_text=">1 runs under accelerate launch")
    metrics = models.JSONField(default=dict, blank=True, help_text="loss history, tokens/s, memory, eta")
    log = models.TextField(blank=True)
    output_dir = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    def __str__(self):
        return self.name or f"training job {self.pk}"


class ModelArtifact(models.Model):
    class Kind(models.TextChoices):
        LORA_ADAPTER = "lora-adapter", "LoRA adapter"
        FULL_MODEL = "full-model", "Full model"
        CROSS_ENCODER = "cross-encoder", "Cross-encoder"
        EMBEDDING = "embedding", "Bi-encoder (sentence-transformers)"

    training_job = models.OneToOneField(TrainingJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="artifact")
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    path = models.CharField(max_length=500)
    base_model = models.CharField(max_length=500, blank=True)
    dataset_hash = models.CharField(max_length=64, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name
