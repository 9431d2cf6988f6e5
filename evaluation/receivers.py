"""Evaluation's answers to what the apps below it announce (connected in EvaluationConfig.ready)."""
from django.dispatch import receiver

from training.models import ModelArtifact
from training.signals import model_artifact_registered

from .services import reranker_model_from_artifact


@receiver(model_artifact_registered, sender=ModelArtifact, dispatch_uid="evaluation.reranker_model_from_artifact")
def on_model_artifact_registered(sender, *, artifact: ModelArtifact, **kwargs) -> None:
    reranker_model_from_artifact(artifact=artifact)
