"""The synthesizer's pages: admin only; new run enqueues on commit; live progress partial; prompts; imports."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from curation.models import Example, GenerationRun, Persona, PromptTemplate
from curation.services.prompts import prompt_defaults_ensure
from limrank_app.jobs import JobStatus
from tests import factories

pytestmark = pytest.mark.django_db

ADMIN_PAGES = ["curation:run_list", "curation:prompt_list", "curation:import_upload"]


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_admin_only(name, reviewer_client):
    from django.test import Client

    url = reverse(name)
    assert Client().get(url).status_code == 302  # anonymous: to the login page
    assert reviewer_client.get(url).status_code == 403


def test_run_pages_reviewer_forbidden(reviewer_client):
    run = factories.GenerationRunFactory()
    assert reviewer_client.get(reverse("curation:run_detail", args=[run.pk])).status_code == 403
    assert reviewer_client.post(reverse("curation:run_cancel", args=[run.pk])).status_code == 403


def test_new_run_form_creates_and_enqueues(admin_client, django_capture_on_commit_callbacks):
    factories.SeedQueryFactory.create_batch(3)
    factories.PersonaFactory.create_batch(2)
    form = {"name": "first", "n_seeds": 2, "n_personas": 2, "random_seed": 1, "in_flight": 8, "consistency_k": 3,
            "n_hard_negatives": 2, "new_dataset": "synthetic-v1"}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(reverse("curation:run_list"), form)
    run = GenerationRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("curation:run_detail", args=[run.pk])
    assert len(callbacks) == 1
    assert run.params["consistency_k"] == 3 and len(run.params["seed_ids"]) == 2 and run.dataset.name == "synthetic-v1"
    assert run.created_by.username == "ada" and run.progress_total == 2 * 2 * 2 * 3
    bad = admin_client.post(reverse("curation:run_list"), {**form, "in_flight": 0})
    assert bad.status_code == 200 and GenerationRun.objects.count() == 1


def test_run_page_progress_partial_and_filtered_examples(admin_client):
    run = factories.GenerationRunFactory(status=JobStatus.RUNNING, progress_done=3, progress_total=12)
    ex = factories.ExampleFactory(generation_run=run, status="filtered_out", filter_reason="reasoner judged relevant; intended not relevant", intended_label=False)
    page = admin_client.get(reverse("curation:run_detail", args=[run.pk]))
    html = page.content.decode()
    assert 'aria-valuenow="25"' in html and 'hx-trigger="every 2s"' in html
    assert "reasoner judged relevant; intended not relevant" in html and ex.query.text[:40] in html
    partial = admin_client.get(reverse("curation:run_detail", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"<html" not in partial.content and b"3 / 12" in partial.content
    GenerationRun.objects.filter(pk=run.pk).update(status=JobStatus.SUCCEEDED, progress_done=12, stats={"kept": 9, "filtered": 1, "failed": 2, "calls": 40, "cost_usd": 0.5, "cost_per_kept_usd": 0.0555})
    done = admin_client.get(reverse("curation:run_detail", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done and "$0.05550" in done  # polling stops when the run is finished


def test_cancel_and_resume_buttons(admin_client, django_capture_on_commit_callbacks):
    run = factories.GenerationRunFactory()
    admin_client.post(reverse("curation:run_cancel", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        admin_client.post(reverse("curation:run_resume", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and len(callbacks) == 1


def reviewer_client_apart():
    from django.test import Client

    c = Client()
    c.force_login(factories.reviewer())
    return c


def test_prompt_edit_creates_a_new_version(admin_client):
    prompt_defaults_ensure()
    url = reverse("curation:prompt_edit", args=["positive"])
    assert reviewer_client_apart().post(url, {"text": "x"}).status_code == 403
    v1 = PromptTemplate.objects.get(name="positive")
    text = v1.text.replace("80 to 200 words", "60 to 150 words")
    response = admin_client.post(url, {"text": text, "notes": "shorter passages"})
    assert response.status_code == 302
    v2 = PromptTemplate.objects.get(name="positive", is_active=True)
    assert (v2.version, v2.notes, v2.created_by.username) == (2, "shorter passages", "ada")
    v1.refresh_from_db()
    assert not v1.is_active and "80 to 200 words" in v1.text  # the old version is kept as it was
    bad = admin_client.post(url, {"text": "Write a passage for {query}."})  # {domain} missing
    assert bad.status_code == 200 and b"must use {domain}" in bad.content
    assert PromptTemplate.objects.filter(name="positive").count() == 2
    admin_client.post(reverse("curation:prompt_activate", args=[v1.pk]))
    assert PromptTemplate.objects.get(name="positive", is_active=True).version == 1
    assert b"Save as version 3" in admin_client.get(url).content


def test_import_upload_page(admin_client):
    good = SimpleUploadedFile("p.jsonl", b'{"persona": "a tax adviser"}\n{"persona": "a beekeeper"}\n')
    assert admin_client.post(reverse("curation:import_upload"), {"kind": "personas", "file": good}).status_code == 302
    assert Persona.objects.count() == 2
    bad = SimpleUploadedFile("p.jsonl", b'{"persona": "a farmer"}\n{"persona": 3}\n')
    response = admin_client.post(reverse("curation:import_upload"), {"kind": "personas", "file": bad})
    assert response.status_code == 400 and b"line 2, field &#x27;persona&#x27;" in response.content
    assert Persona.objects.count() == 2
    ex = SimpleUploadedFile("r.jsonl", b'{"query": "q", "passage": "p", "reasoning": "r", "label": true}\n')
    admin_client.post(reverse("curation:import_upload"), {"kind": "examples", "file": ex, "origin": "rank1", "dataset": "mix"})
    assert Example.objects.get().dataset.name == "mix"


def test_nav_links_for_admin_only(admin_client):
    assert b'href="/runs/"' in admin_client.get(reverse("home")).content
    assert b'href="/runs/"' not in reviewer_client_apart().get(reverse("home")).content
