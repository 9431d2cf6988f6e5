import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError
from django.urls import reverse

from curation.models import Example, Review
from limrank_app.jobs import JobStatus, job_cancel, job_claim, job_finish, job_progress
from tests import factories

pytestmark = pytest.mark.django_db


def test_roles_exist_with_permissions():
    reviewer = Group.objects.get(name="reviewer")
    admin = Group.objects.get(name="admin")
    assert reviewer.permissions.filter(codename="add_review").exists()
    assert not reviewer.permissions.filter(codename="add_trainingjob").exists()
    assert admin.permissions.filter(codename="add_trainingjob").exists()
    assert admin.permissions.count() > reviewer.permissions.count()


def test_example_content_hash_is_unique():
    ex = factories.ExampleFactory()
    with pytest.raises(IntegrityError):
        factories.ExampleFactory(query=ex.query, passage=ex.passage, content_hash=ex.content_hash)


def test_one_live_review_per_reviewer_but_undone_ones_may_repeat(reviewer_user):
    ex = factories.ExampleFactory()
    Review.objects.create(example=ex, reviewer=reviewer_user, decision="approve", undone=True)
    Review.objects.create(example=ex, reviewer=reviewer_user, decision="reject")
    with pytest.raises(IntegrityError):
        Review.objects.create(example=ex, reviewer=reviewer_user, decision="approve")


def test_job_claim_once_then_refuses():
    run = factories.GenerationRunFactory()
    assert job_claim(type(run), pk=run.pk)
    assert not job_claim(type(run), pk=run.pk)  # a second delivery finds it running with a fresh heartbeat
    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING and run.attempts == 1


def test_job_claim_takes_over_a_stale_running_job():
    run = factories.GenerationRunFactory()
    assert job_claim(type(run), pk=run.pk)
    assert job_claim(type(run), pk=run.pk, lease_seconds=-1)  # heartbeat older than the lease: worker presumed dead
    run.refresh_from_db()
    assert run.attempts == 2


def test_job_attempts_are_capped():
    run = factories.GenerationRunFactory(max_attempts=1)
    assert job_claim(type(run), pk=run.pk)
    assert not job_claim(type(run), pk=run.pk, lease_seconds=-1)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "attempts" in run.error


def test_finished_job_is_never_claimed_again():
    run = factories.GenerationRunFactory()
    job_claim(type(run), pk=run.pk)
    job_finish(run)
    assert not job_claim(type(run), pk=run.pk, lease_seconds=-1)
    assert run.status == JobStatus.SUCCEEDED


def test_progress_reports_cancel():
    run = factories.GenerationRunFactory()
    job_claim(type(run), pk=run.pk)
    assert job_progress(run, done=3, total=10) is True
    job_cancel(run)
    assert job_progress(run, done=4) is False
    run.refresh_from_db()
    assert (run.progress_done, run.progress_total, run.progress_percent) == (4, 10, 40)


def test_queued_job_cancel_is_immediate():
    run = factories.GenerationRunFactory()
    job_cancel(run)
    assert run.status == JobStatus.CANCELLED
    assert not job_claim(type(run), pk=run.pk)


def test_anonymous_is_sent_to_login(client):
    resp = client.get(reverse("home"))
    assert resp.status_code == 302 and reverse("login") in resp["Location"]


def test_reviewer_home_and_examples(reviewer_client):
    factories.ExampleFactory(status=Example.Status.PENDING_REVIEW)
    assert reviewer_client.get(reverse("home")).status_code == 200
    resp = reviewer_client.get(reverse("curation:example_list") + "?status=pending_review")
    assert resp.status_code == 200 and b"boil" in resp.content


def test_reviewer_cannot_reach_status_or_admin(reviewer_client):
    assert reviewer_client.get(reverse("status")).status_code == 403
    resp = reviewer_client.get("/admin/")
    assert resp.status_code == 302  # not staff: Django admin sends to its login


def test_admin_reaches_status_and_admin_pages(admin_client):
    assert admin_client.get(reverse("status")).status_code == 200
    for url in ["/admin/", "/admin/curation/example/", "/admin/training/trainingjob/", "/admin/evaluation/evalrun/"]:
        assert admin_client.get(url).status_code == 200, url


def test_user_without_role_gets_no_work(client):
    user = factories.UserFactory()
    client.force_login(user)
    assert client.get(reverse("curation:example_list")).status_code == 403
    assert b"no role yet" in client.get(reverse("home")).content


def test_login_form_logs_in(client):
    factories.reviewer(username="lena")
    resp = client.post(reverse("login"), {"username": "lena", "password": "pw-12345678"})
    assert resp.status_code == 302
    assert client.get(reverse("home")).status_code == 200
