"""Large version builds and bulk decisions run as jobs with progress (issue 21): the threshold, the job pages and API,
resume, and idempotency (a job run twice, or restarted after a killed worker, writes nothing twice)."""
import pytest
from django.core.exceptions import ValidationError

from curation.models import BulkDecision, DatasetVersion, DatasetVersionBuild, DatasetVersionMember, Example, Review
from curation.services import datasets as ds_svc
from curation.services import review as review_svc
from limrank_app.jobs import JobStatus, job_claim
from tests import factories
from tests.curation.api.conftest import make_examples

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_threshold(settings):
    settings.LIMRANK_BULK_JOB_THRESHOLD = 5
    return settings


def _run_build(job_pk):
    assert job_claim(DatasetVersionBuild, pk=job_pk)
    return ds_svc.dataset_version_build_execute(job=DatasetVersionBuild.objects.get(pk=job_pk))


def test_a_small_build_runs_in_the_request_a_large_one_is_queued(small_threshold, principals):
    ds = factories.DatasetFactory(name="jobs")
    make_examples(12, dataset=ds, tag="jobs")
    admin = principals["admin"].client
    r = admin.post("/api/dataset-versions/", {"dataset": ds.pk, "recipe": {"seed": 1, "mix": {"synthetic": 4}}}, format="json")
    assert r.status_code == 201 and r.json()["example_count"] == 4
    r = admin.post("/api/dataset-versions/", {"dataset": ds.pk, "recipe": {"seed": 1}}, format="json")
    assert r.status_code == 202, r.content
    body = r.json()
    assert body["status"] == "queued" and r["Location"] == body["url"] and body["url"].endswith(f"/api/dataset-versions/{body['version']}/build/")
    version = DatasetVersion.objects.get(pk=body["version"])
    assert version.status == "building" and version.example_count == 0 and version.version == 2
    # a shortfall is refused at once, not left to the job
    r = admin.post("/api/dataset-versions/", {"dataset": ds.pk, "recipe": {"mix": {"synthetic": 99}}}, format="json")
    assert r.status_code == 400 and "99 synthetic examples asked, 12 available" in str(r.json())
    # reviewers read the job; only admins build
    assert principals["reviewer"].client.get(body["url"]).json()["status"] == "queued"
    assert principals["reviewer"].client.post("/api/dataset-versions/", {"dataset": ds.pk}, format="json").status_code == 403
    assert principals["reviewer"].client.post(f"/api/dataset-versions/{version.pk}/resume/").status_code == 403

    built = _run_build(version.build.pk)
    assert built.example_count == 12 and built.content_hash
    job = DatasetVersionBuild.objects.get(pk=version.build.pk)
    assert job.status == JobStatus.SUCCEEDED and (job.progress_done, job.progress_total) == (12, 12)
    # the same filter and recipe built in the request gives the same version content
    same = ds_svc.dataset_version_build(dataset=ds, filters={}, recipe={"seed": 1})
    assert same.content_hash == built.content_hash
    assert admin.get(body["url"]).json()["status"] == "succeeded"
    assert admin.post(f"/api/dataset-versions/{version.pk}/resume/").status_code == 409  # built: nothing to resume


def test_a_build_job_run_twice_or_restarted_writes_the_same_version_once(small_threshold, monkeypatch):
    ds = factories.DatasetFactory(name="idempotent")
    make_examples(25, dataset=ds, tag="idem")
    job = ds_svc.dataset_version_build_queue(dataset=ds, filters={}, recipe={"seed": 3})
    # A worker killed mid-way (here: an error after the first chunk) wrote nothing: the transaction rolled back.
    monkeypatch.setattr(ds_svc, "BUILD_CHUNK", 10)
    monkeypatch.setattr(ds_svc, "BUILD_CHUNK_SQLITE", 10)
    calls = []

    def dies(done, total):
        calls.append(done)
        raise RuntimeError("worker killed")

    real = ds_svc._members_write
    monkeypatch.setattr(ds_svc, "_members_write", lambda **kw: real(**{**kw, "progress": dies}))
    assert job_claim(DatasetVersionBuild, pk=job.pk)
    with pytest.raises(RuntimeError):
        ds_svc.dataset_version_build_execute(job=DatasetVersionBuild.objects.get(pk=job.pk))
    assert calls == [10] and not DatasetVersionMember.objects.filter(version=job.version).exists()
    job.refresh_from_db()
    job.version.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.version.status == "failed" and "worker killed" in job.version.error
    monkeypatch.setattr(ds_svc, "_members_write", real)
    # Resume: queued again, builds the same version (same number, same members).
    assert ds_svc.dataset_version_build_resume(version=job.version)
    assert DatasetVersion.objects.get(pk=job.version.pk).status == "building"
    first = _run_build(job.pk)
    members = list(DatasetVersionMember.objects.filter(version=first).order_by("position").values_list("example_id", flat=True))
    assert len(members) == 25 and first.version == 1
    # A redelivered task after the job's row was lost mid-finish (claimable again): nothing is written twice.
    DatasetVersionBuild.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED, attempts=0)
    again = _run_build(job.pk)
    assert again.content_hash == first.content_hash
    assert list(DatasetVersionMember.objects.filter(version=first).order_by("position").values_list("example_id", flat=True)) == members


def test_a_failed_recipe_fails_the_job_with_its_reason(small_threshold):
    ds = factories.DatasetFactory(name="vanishing")
    make_examples(8, dataset=ds, tag="gone")
    job = ds_svc.dataset_version_build_queue(dataset=ds, filters={}, recipe={"seed": 3})
    Example.objects.filter(dataset=ds).update(status=Example.Status.REJECTED)  # nothing matches by the time it runs
    version = _run_build(job.pk)
    job.refresh_from_db()
    assert version.status == "failed" and "no examples match" in version.error
    assert job.status == JobStatus.FAILED and "no examples match" in job.error


def test_bulk_decision_threshold_job_and_idempotency(small_threshold):
    ds = factories.DatasetFactory(name="bulk")
    make_examples(9, dataset=ds, status=Example.Status.PENDING_REVIEW, tag="bulk")
    admin, reviewer = factories.admin(username="boss"), factories.reviewer(username="rev")
    with pytest.raises(ValidationError):
        review_svc.bulk_decision_request(admin=admin, filters={"sort": "-id"}, decision="approve")
    with pytest.raises(review_svc.PermissionDenied):
        review_svc.bulk_decision_request(admin=reviewer, filters={"dataset": str(ds.pk)}, decision="approve")
    small = review_svc.bulk_decision_request(admin=admin, filters={"dataset": str(ds.pk), "q": "bulk 1"}, decision="reject")
    assert small.status == JobStatus.SUCCEEDED and small.changed == 1
    job = review_svc.bulk_decision_request(admin=admin, filters={"dataset": str(ds.pk)}, decision="approve", reason="ok")
    assert job.status == JobStatus.QUEUED and job.changed is None
    assert job_claim(BulkDecision, pk=job.pk)
    done = review_svc.bulk_decision_execute(job=BulkDecision.objects.get(pk=job.pk))
    assert done.status == JobStatus.SUCCEEDED and done.changed == 9 and done.progress_done == 9
    assert Example.objects.filter(dataset=ds, status=Example.Status.APPROVED).count() == 9
    # redelivered: the job is claimable again (its worker died after the commit) but decides nothing twice
    BulkDecision.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED, attempts=0)
    assert job_claim(BulkDecision, pk=job.pk)
    again = review_svc.bulk_decision_execute(job=BulkDecision.objects.get(pk=job.pk))
    assert again.changed == 9 and Review.objects.filter(example__dataset=ds, decision="approve").count() == 9


def test_bulk_decision_pages_and_api(small_threshold, client, principals):
    ds = factories.DatasetFactory(name="bulk pages")
    make_examples(7, dataset=ds, status=Example.Status.PENDING_REVIEW, tag="pages")
    client.force_login(principals["admin"].user)
    r = client.post("/review/browse/", {"dataset": str(ds.pk), "bulk_decision": "approve"})
    job = BulkDecision.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/review/bulk/{job.pk}/"
    page = client.get(r["Location"])
    assert page.status_code == 200 and b"Bulk approve" in page.content and b'hx-trigger="every 2s"' in page.content
    api = principals["admin"].client
    r = api.post("/api/bulk-decisions/", {"filters": {"dataset": str(ds.pk)}, "decision": "reject"}, format="json")
    assert r.status_code == 202 and r["Location"] == r.json()["url"] and r.json()["status"] == "queued"
    assert api.get(r.json()["url"]).json()["decision"] == "reject"
    r = api.post("/api/bulk-decisions/", {"filters": {"dataset": str(ds.pk), "q": "pages 3"}, "decision": "reject"}, format="json")
    assert r.status_code == 201 and r.json()["changed"] == 1
    assert api.post("/api/bulk-decisions/", {"filters": {}, "decision": "reject"}, format="json").status_code == 400
    assert api.post(f"/api/bulk-decisions/{job.pk}/resume/").status_code == 200  # queued: sent again
    reviewer = principals["reviewer"].client
    assert reviewer.post("/api/bulk-decisions/", {"filters": {"dataset": str(ds.pk)}, "decision": "reject"}, format="json").status_code == 403
    assert reviewer.get(f"/api/bulk-decisions/{job.pk}/").status_code == 403


def test_workers_warm_the_aggregates_before_they_go_cold(settings, monkeypatch):
    from datetime import timedelta

    from django.core.cache import cache
    from django.utils import timezone

    from curation.selectors import aggregates

    settings.LIMRANK_AGGREGATE_CACHE_SECONDS = 60
    cache.clear()
    sent = []
    monkeypatch.setattr(aggregates.current_app, "send_task", lambda name, args: sent.append((name, args[0])))
    assert aggregates.aggregate_warm() == ["dashboard", "home", "quality:all"]  # none yet: all sent
    assert sent == [(aggregates.REFRESH_TASK, n) for n in ("dashboard", "home", "quality:all")]
    for name in aggregates.WARM:
        aggregates.aggregate_refresh(name=name)
    assert aggregates.aggregate_warm() == []  # fresh: nothing to do
    old = {**cache.get(aggregates.KEY_PREFIX + "home"), "as_of": timezone.now() - timedelta(seconds=301)}
    cache.set(aggregates.KEY_PREFIX + "home", old)
    assert aggregates.aggregate_warm() == ["home"]  # half-way to cold (5 x 60 s): refreshed before a request must
    cache.clear()
