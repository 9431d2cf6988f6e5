"""Training API and admin pages: permissions, launch validation, cancel, the job page, the command."""
from __future__ import annotations

from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from limrank_app.services import api_token_create
from limrank_app.jobs import JobStatus
from tests import factories
from tests.training.conftest import make_dataset_version, reasoning_rows
from training.models import TrainingJob


@pytest.fixture
def version(db):
    return make_dataset_version(reasoning_rows(4))


def _token_client(user, scope):
    _, key = api_token_create(user=user, name="t", scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.mark.django_db
def test_api_permissions_launch_validation_and_cancel(version, tiny_qwen_dir, django_capture_on_commit_callbacks):
    admin, reviewer = factories.admin(), factories.reviewer()
    body = {"dataset_version": version.pk, "preset": "released", "base_model": str(tiny_qwen_dir),
            "overrides": {"max_steps": 2, "learning_rate": 1e-3}}
    url = "/api/training-jobs/"
    assert APIClient().get(url).status_code in (401, 403)
    # Reviewers read; only admins launch; a read-only admin token may not launch.
    assert _token_client(reviewer, "write").get(url).status_code == 200
    assert _token_client(reviewer, "write").post(url, body, format="json").status_code == 403
    assert _token_client(admin, "read").post(url, body, format="json").status_code == 403
    writer = _token_client(admin, "write")

    bad = writer.post(url, {**body, "overrides": {"learning_rate": "fast", "bogus": 1}}, format="json")
    assert bad.status_code == 400 and {"learning_rate", "bogus"} <= set(bad.json())
    bad = writer.post(url, {**body, "overrides": {"loss": "listwise"}}, format="json")  # cross-encoder only
    assert bad.status_code == 400 and "cross-encoder" in str(bad.json()["loss"])
    assert writer.post(url, {**body, "dataset_version": 999999}, format="json").status_code == 400

    with mock.patch("training.tasks.training_job_execute_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            created = writer.post(url, body, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    delay.assert_called_once_with(data["id"])
    assert data["status"] == "queued" and data["hyperparameters"]["max_steps"] == 2
    assert data["hyperparameters"]["lr_scheduler"] == "cosine" and data["hyperparameters"]["learning_rate"] == 1e-3

    listed = _token_client(reviewer, "read").get(url, {"status": "queued"}).json()
    assert [j["id"] for j in listed["results"]] == [data["id"]]
    detail = writer.get(f"{url}{data['id']}/").json()
    assert "log" in detail and "created by" in detail["log"]
    assert _token_client(reviewer, "write").post(f"{url}{data['id']}/cancel/").status_code == 403
    cancelled = writer.post(f"{url}{data['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    presets = writer.get("/api/training-presets/").json()
    assert {p["name"] for p in presets} == {"paper", "released", "rank1", "cpu-demo", "cpu-demo-cross-encoder"}
    assert writer.get("/api/model-artifacts/").status_code == 200


@pytest.mark.django_db
def test_pages_are_admin_only_and_launch_form_starts_from_presets(client, version, tiny_qwen_dir,
                                                                   django_capture_on_commit_callbacks):
    reviewer, admin = factories.reviewer(), factories.admin()
    client.force_login(reviewer)
    assert client.get(reverse("training:job_list")).status_code == 403
    assert client.get(reverse("training:job_launch")).status_code == 403
    client.force_login(admin)
    page = client.get(reverse("training:job_launch"), {"preset": "paper"})
    assert page.status_code == 200
    form = page.context["form"]
    assert form["learning_rate"].initial == 6e-5 and form["effective_batch_size"].initial == 128
    assert [c for c, _ in form.fields["loss"].choices] == ["bce", "listwise"] and form["loss"].initial == "bce"
    assert client.get(reverse("training:job_launch"), {"preset": "released"}).context["form"]["epochs"].initial == 7.0

    values = {name: field.initial for name, field in form.fields.items() if field.initial is not None}
    values.update({"dataset_version": version.pk, "preset": "paper", "base_model": str(tiny_qwen_dir),
                   "learning_rate": "0.0002", "bf16": "", "add_think_tokens": "on", "name": "my run"})
    values.pop("bf16")  # an unchecked box is absent from the POST
    with mock.patch("training.tasks.training_job_execute_task.delay"):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("training:job_launch"), values)
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    job = TrainingJob.objects.get(name="my run")
    assert job.hyperparameters["learning_rate"] == 2e-4 and job.hyperparameters["bf16"] is False
    assert job.hyperparameters["lora_alpha"] == 64 and job.preset == "paper"

    bad = client.post(reverse("training:job_launch"), {**values, "warmup_ratio": "3", "name": "bad"})
    assert bad.status_code == 200 and "warmup_ratio" in bad.context["form"].errors
    assert not TrainingJob.objects.filter(name="bad").exists()

    TrainingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, progress_done=3, progress_total=10,
        metrics={"loss": [[1, 2.5], [2, 2.1], [3, 1.9]], "eta_seconds": 125, "tokens_per_second": 512.0})
    detail = client.get(reverse("training:job_detail", args=[job.pk]))
    html = detail.content.decode()
    assert "3 / 10" in html and "1.9000" in html and "2m 05s" in html and "<svg" in html
    assert 'hx-trigger="every 2s"' in html and "Cancel" in html
    live = client.get(reverse("training:job_live", args=[job.pk])).content.decode()
    assert 'id="job-live"' in live and "<svg" in live and "<html" not in live
    client.post(reverse("training:job_cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.cancel_requested
    listing = client.get(reverse("training:job_list")).content.decode()
    assert "my run" in listing and reverse("training:job_list") in listing  # nav link for admins


@pytest.mark.django_db
def test_train_command_validates_and_queues(version, tiny_qwen_dir, django_capture_on_commit_callbacks):
    with pytest.raises(CommandError, match="no such dataset version"):
        call_command("train", "--dataset-version", "999999")
    with pytest.raises(CommandError, match="learning_rate"):
        call_command("train", "--dataset-version", str(version.pk), "--base-model", str(tiny_qwen_dir),
                     "--set", "learning_rate=abc")
    with pytest.raises(CommandError, match="expected key=value"):
        call_command("train", "--dataset-version", str(version.pk), "--set", "oops")
    with mock.patch("training.tasks.training_job_execute_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            call_command("train", "--dataset-version", str(version.pk), "--backbone", "cross-encoder",
                         "--preset", "cpu-demo-cross-encoder", "--set", "epochs=2", "--set", "max_length=64",
                         "--set", "loss=listwise", "--set", "group_size=4")
    job = TrainingJob.objects.get()
    delay.assert_called_once_with(job.pk)
    assert job.backbone == "cross-encoder" and job.hyperparameters["epochs"] == 2.0 and job.hyperparameters["max_length"] == 64
    assert job.hyperparameters["loss"] == "listwise" and job.hyperparameters["group_size"] == 4
    with pytest.raises(CommandError, match="group_size"):
        call_command("train", "--dataset-version", str(version.pk), "--preset", "cpu-demo-cross-encoder",
                     "--set", "loss=listwise", "--set", "group_size=1")
