"""A real Celery worker runs a queued version build and a queued bulk decision (both brokers; no eager mode)."""
import pytest

from curation.models import BulkDecision, DatasetVersion, DatasetVersionBuild, Example, Review
from curation.services.datasets import dataset_version_build_queue
from curation.services.review import bulk_decision_request
from limrank_app.jobs import JobStatus
from tests import factories
from tests.conftest import celery_worker, wait_for
from tests.curation.api.conftest import make_examples

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_worker_builds_a_queued_version_and_decides_a_queued_bulk_decision(broker_url, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.LIMRANK_BULK_JOB_THRESHOLD = 3
    ds = factories.DatasetFactory(name="built by a worker")
    make_examples(9, dataset=ds, tag="wjob")
    make_examples(6, dataset=ds, status=Example.Status.PENDING_REVIEW, tag="wpending")
    admin = factories.admin(username="boss")
    with celery_worker(broker_url, queues=("llm",)):  # curation.tasks.* are routed to the llm queue
        job = dataset_version_build_queue(dataset=ds, filters={}, recipe={"seed": 2}, created_by=admin)
        bulk = bulk_decision_request(admin=admin, filters={"dataset": str(ds.pk), "status": "pending_review"},
                                     decision="approve")
        assert bulk.status == JobStatus.QUEUED
        assert wait_for(lambda: DatasetVersion.objects.get(pk=job.version_id).status != "building", timeout=90)
        assert wait_for(lambda: BulkDecision.objects.get(pk=bulk.pk).is_finished, timeout=60)
    job = DatasetVersionBuild.objects.select_related("version").get(pk=job.pk)
    assert job.status == JobStatus.SUCCEEDED and job.progress_done == job.progress_total == 9
    assert job.version.status == "ready", job.version.error
    assert job.version.example_count == 9 and job.version.members.count() == 9
    bulk.refresh_from_db()
    assert bulk.status == JobStatus.SUCCEEDED and bulk.changed == 6, bulk.error
    assert Review.objects.filter(example__dataset=ds, is_adjudication=True).count() == 6
    assert Example.objects.filter(dataset=ds, status=Example.Status.APPROVED).count() == 15
