"""What training announces to the apps built on it. Training never writes their rows: they listen here."""
from django.dispatch import Signal

# Sent when a job's artifact row is stored (again when a retried job stores it again), inside the job's
# transaction; keyword argument `artifact`, the ModelArtifact. Evaluation registers a scorable model from it.
model_artifact_registered = Signal()
