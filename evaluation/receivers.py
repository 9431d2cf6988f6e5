"""Evaluation's answers to what the apps below it announce (connected in EvaluationConfig.ready)."""
from django.dispatch import receiver

from curation.diagnostics import contamination_source_register
from training.models import ModelArtifact
from training.signals import model_artifact_registered

from .selectors import benchmark_texts
from .services import reranker_model_from_artifact

# The contamination diagnostic of dataset versions checks them against every loaded benchmark.
contamination_source_register("evaluation.benchmarks", benchmark_texts)


@receiver(model_artifact_registered, sender=ModelArtifact, dispatch_uid="evaluation.reranker_model_from_artifact")
def on_model_artifact_registered(sender, *, artifact: ModelArtifact, **kwargs) -> None:
    reranker_model_from_artifact(artifact=artifact)
