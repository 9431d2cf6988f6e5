"""Jobs always finish: the sweeper re-queues every kind of job whose lease ran out and sends queued jobs whose task
never reached the broker; Resume/Retry in the UI and the API (admins); a launch with the broker down answers 503
and leaves a queued, resumable row. The worker end to end (kill -9, broker outage): tests/integration/test_job_faults.py."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from curation.models import GenerationRun
from evaluation.models import EvalRun
from limrank_app.jobs import JobStatus, job_resume, job_sweep, recoverable_jobs
from tests import factories
from tests.conftest import broker_switched
from training.models import TrainingJob

pytestmark = pytest.mark.django_db

# Every kind of job and the task that runs it: what the sweeper and Resume must find on the job models.
JOB_TASKS = {
    "curation.GenerationRun": "curation.tasks.generation_run_execute_task",
    "curation.DatasetVersionBuild": "curation.tasks.dataset_version_build_task",
    "curation.BulkDecision": "curation.tasks.bulk_decision_execute_task",
    "training.TrainingJob": "training.tasks.training_job_execute_task",
    "evaluation.EvalRun": "evaluation.tasks.eval_run_execute_task",
}


def test_every_job_kind_names_its_task():
    assert recoverable_jobs() == JOB_TASKS


@pytest.fixture
def sent(monkeypatch):
    """Tasks handed to the broker: (task name, args)."""
    from celery import current_app

    calls = []
    monkeypatch.setattr(current_app, "send_task",
                        lambda name, args=None, kwargs=None, **kw: calls.append((name, tuple(args))))
    return calls


@pytest.fixture
def jobs(db):
    return {
        "curation.GenerationRun": factories.GenerationRunFactory(),
        "training.TrainingJob": factories.TrainingJobFactory(),
        "evaluation.EvalRun": EvalRun.objects.create(benchmark=factories.BenchmarkFactory(), model=factories.RerankerModelFactory()),
    }


@pytest.fixture
def all_jobs(jobs):
    """Every kind of job, the scale jobs (issue 21) included."""
    from curation.models import BulkDecision, DatasetVersion, DatasetVersionBuild

    version = DatasetVersion.objects.create(dataset=factories.DatasetFactory(), version=1)
    return {**jobs,
            "curation.DatasetVersionBuild": DatasetVersionBuild.objects.create(version=version),
            "curation.BulkDecision": BulkDecision.objects.create(filters={"status": "pending_review"}, decision="approve",
                                                                requested_by=factories.admin(username="bulk-owner"))}


def _url(template: str, job) -> str:
    """A job's page: a version build's is its version's."""
    return template.format(getattr(job, "version_id", None) or job.pk)


def _set(job, **fields):
    type(job).objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()


def test_sweeper_requeues_every_kind_of_job_whose_lease_ran_out(jobs, sent, settings):
    old = timezone.now() - timedelta(seconds=settings.LIMRANK_JOB_LEASE_SECONDS + 5)
    for job in jobs.values():
        _set(job, status=JobStatus.RUNNING, attempts=1, heartbeat_at=old, claimed_by="dead:1")
    assert job_sweep() == 3
    assert sorted(sent) == sorted((type(job).execute_task, (job.pk,)) for job in jobs.values())
    for job in jobs.values():
        job.refresh_from_db()
        assert job.status == JobStatus.QUEUED and job.claimed_by == "" and job.heartbeat_at is not None
    # A second pass (another worker) sends nothing again: each job was taken once.
    assert job_sweep() == 0 and len(sent) == 3


def test_sweeper_leaves_live_jobs_and_fails_exhausted_ones(jobs, sent, settings):
    run, job, ev = jobs.values()
    _set(run, status=JobStatus.RUNNING, attempts=1, heartbeat_at=timezone.now())  # a live worker holds it
    _set(job, status=JobStatus.RUNNING, attempts=3, max_attempts=3,
         heartbeat_at=timezone.now() - timedelta(seconds=settings.LIMRANK_JOB_LEASE_SECONDS + 5))
    _set(ev, status=JobStatus.SUCCEEDED)
    assert job_sweep() == 0 and sent == []
    run.refresh_from_db(), job.refresh_from_db()
    assert run.status == JobStatus.RUNNING
    assert job.status == JobStatus.FAILED and "attempts exhausted" in job.error


def test_sweeper_cancels_a_lost_job_whose_cancel_was_asked(jobs, sent, settings):
    job = jobs["training.TrainingJob"]
    _set(job, status=JobStatus.RUNNING, attempts=1, cancel_requested=True,
         heartbeat_at=timezone.now() - timedelta(seconds=settings.LIMRANK_JOB_LEASE_SECONDS + 5))
    job_sweep()
    assert (TrainingJob.execute_task, (job.pk,)) not in sent
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None


def test_sweeper_sends_queued_jobs_never_sent_and_resends_old_ones(jobs, sent, settings):
    run, job, ev = jobs.values()
    # run: never sent (broker was down at launch); job: sent just now; ev: sent long ago (the broker may have lost it).
    _set(run, status=JobStatus.QUEUED, heartbeat_at=None)
    _set(job, status=JobStatus.QUEUED, heartbeat_at=timezone.now())
    _set(ev, status=JobStatus.QUEUED, heartbeat_at=timezone.now() - timedelta(seconds=settings.LIMRANK_JOB_RESEND_SECONDS + 1))
    assert job_sweep() == 2
    assert sorted(sent) == sorted([(JOB_TASKS["curation.GenerationRun"], (run.pk,)), (JOB_TASKS["evaluation.EvalRun"], (ev.pk,))])


def test_sweeper_with_the_broker_down_keeps_the_job_unsent():
    run = factories.GenerationRunFactory()
    _set(run, status=JobStatus.QUEUED, heartbeat_at=None)
    with broker_switched("redis://127.0.0.1:1/0"):
        assert job_sweep() == 0
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and run.heartbeat_at is None  # the next sweep tries again


@pytest.mark.parametrize("status, resumable", [
    (JobStatus.FAILED, True), (JobStatus.CANCELLED, True), (JobStatus.QUEUED, True), (JobStatus.SUCCEEDED, False),
])
def test_job_resume(jobs, sent, status, resumable, django_capture_on_commit_callbacks):
    for job in jobs.values():
        _set(job, status=status, attempts=3, error="boom")
        with django_capture_on_commit_callbacks(execute=True):
            assert job_resume(job) is resumable
        if resumable:
            assert job.status == JobStatus.QUEUED and job.attempts == 0 and job.error == ""
    assert len(sent) == (3 if resumable else 0)


def test_a_running_job_on_a_live_worker_is_not_resumed(jobs, sent):
    run = jobs["curation.GenerationRun"]
    _set(run, status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    assert not run.is_resumable and not job_resume(run)
    _set(run, heartbeat_at=timezone.now() - timedelta(hours=1))
    assert run.is_resumable and job_resume(run)


RESUME_API = {
    "curation.GenerationRun": "/api/generation-runs/{}/resume/",
    "curation.DatasetVersionBuild": "/api/dataset-versions/{}/resume/",
    "curation.BulkDecision": "/api/bulk-decisions/{}/resume/",
    "training.TrainingJob": "/api/training-jobs/{}/resume/",
    "evaluation.EvalRun": "/api/eval-runs/{}/resume/",
}
RESUME_UI = {
    "curation.GenerationRun": "/runs/{}/resume/",
    "curation.DatasetVersionBuild": "/datasets/versions/{}/resume/",
    "curation.BulkDecision": "/review/bulk/{}/",
    "training.TrainingJob": "/training/jobs/{}/resume/",
    "evaluation.EvalRun": "/evaluation/runs/{}/resume/",
}
DETAIL_UI = {
    "curation.GenerationRun": "/runs/{}/",
    "curation.DatasetVersionBuild": "/datasets/versions/{}/",
    "curation.BulkDecision": "/review/bulk/{}/",
    "training.TrainingJob": "/training/jobs/{}/",
    "evaluation.EvalRun": "/evaluation/runs/{}/",
}


@pytest.mark.parametrize("label", list(JOB_TASKS))
def test_resume_in_the_api_admins_only(all_jobs, sent, label, client, django_capture_on_commit_callbacks):
    job = all_jobs[label]
    _set(job, status=JobStatus.FAILED, error="boom")
    url = _url(RESUME_API[label], job)
    client.force_login(factories.reviewer())
    assert client.post(url).status_code == 403
    client.force_login(factories.admin())
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(url)
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "queued"
    assert sent == [(JOB_TASKS[label], (job.pk,))]
    _set(job, status=JobStatus.SUCCEEDED)
    assert client.post(url).status_code == 409


@pytest.mark.parametrize("label", list(JOB_TASKS))
def test_resume_in_the_ui(all_jobs, sent, label, client, django_capture_on_commit_callbacks):
    job = all_jobs[label]
    _set(job, status=JobStatus.CANCELLED)
    client.force_login(factories.admin())
    page = client.get(_url(DETAIL_UI[label], job)).content.decode()
    assert f'action="{_url(RESUME_UI[label], job)}"' in page
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(_url(RESUME_UI[label], job))
    assert r.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and sent == [(JOB_TASKS[label], (job.pk,))]
    client.force_login(factories.reviewer())
    assert client.post(_url(RESUME_UI[label], job)).status_code == 403


@pytest.mark.django_db(transaction=True)  # the task is sent on commit, inside the request
def test_launch_with_the_broker_down_is_503_and_the_run_stays_resumable(admin_client):
    with broker_switched("redis://127.0.0.1:1/0"):
        r = admin_client.post("/runs/", {"n_seeds": 0, "n_personas": 0, "random_seed": 1, "in_flight": 1,
                                         "consistency_k": 1, "n_hard_negatives": 1})
        assert r.status_code == 503
        assert "job queue" in r.content.decode() and "Resume" in r.content.decode()
        run = GenerationRun.objects.get()
        assert run.status == JobStatus.QUEUED and run.heartbeat_at is None and run.is_resumable
        run_ = factories.GenerationRunFactory(status=JobStatus.FAILED)
        r = admin_client.post(f"/api/generation-runs/{run_.pk}/resume/")
        assert r.status_code == 503 and "broker" in r.json()["detail"]
        run_.refresh_from_db()
        assert run_.status == JobStatus.QUEUED and run_.heartbeat_at is None


@pytest.mark.django_db(transaction=True)  # the keep-alive thread writes through its own connection
def test_keepalive_renews_the_lease_of_a_silent_job_only_while_it_runs(settings):
    import time

    from limrank_app.jobs import job_claim, job_keepalive

    settings.LIMRANK_WORKER_HEARTBEAT_SECONDS = 0.1
    run = factories.GenerationRunFactory()
    assert job_claim(GenerationRun, pk=run.pk)
    old = timezone.now() - timedelta(hours=1)
    GenerationRun.objects.filter(pk=run.pk).update(heartbeat_at=old)
    with job_keepalive(GenerationRun, pk=run.pk):
        time.sleep(0.5)  # a job that reports no progress (loading a model)
    run.refresh_from_db()
    assert run.heartbeat_at > timezone.now() - timedelta(seconds=5) and not run.is_resumable
    GenerationRun.objects.filter(pk=run.pk).update(heartbeat_at=old)
    time.sleep(0.3)  # the task ended: nothing renews the lease any more
    run.refresh_from_db()
    assert run.heartbeat_at == old
