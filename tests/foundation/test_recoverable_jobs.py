"""A starting worker re-enqueues every kind of job a dead worker left running: the core finds them by model."""
from limrank_app.celery import app
from limrank_app.jobs import recoverable_jobs


def test_every_job_model_names_a_registered_task():
    jobs = recoverable_jobs()
    assert set(jobs) == {"curation.GenerationRun", "curation.DatasetVersionBuild", "curation.BulkDecision",
                         "training.TrainingJob", "evaluation.EvalRun"}
    app.loader.import_default_modules()
    for label, task in jobs.items():
        assert task in app.tasks, (label, task)
