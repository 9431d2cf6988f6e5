"""Generation parameters: one typed value, its defaults and limits in one place, used by the form, the command and
the service, and read back from a run's stored params."""
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from curation.generation_params import DEFAULTS, LIMITS, GenerationParams
from curation.services.generation import generation_run_create
from curation.views.runs import GenerationRunForm
from tests import factories


def test_defaults_and_round_trip():
    p = GenerationParams(n_seeds=3, consistency_k=5, temperature=0.2)
    assert GenerationParams.from_stored({**p.to_dict(), "seed_ids": [1, 2], "prompt_versions": {}}) == p
    assert GenerationParams.from_stored({}) == DEFAULTS  # a run stored before a field existed takes the default


@pytest.mark.parametrize("field, bad", [("in_flight", 0), ("in_flight", 513), ("consistency_k", 16),
                                        ("n_hard_negatives", 0), ("n_seeds", -1), ("temperature", 2.5),
                                        ("in_flight", "8"), ("consistency_k", 1.5), ("in_flight", True)])
def test_a_bad_value_names_its_field(field, bad):
    with pytest.raises(ValidationError) as err:
        GenerationParams(**{field: bad})
    assert list(err.value.message_dict) == [field]


def test_unknown_name_is_refused():
    with pytest.raises(ValidationError) as err:
        GenerationParams.build(n_seeds=1, in_fligth=4)
    assert list(err.value.message_dict) == ["in_fligth"]


def test_the_form_takes_defaults_and_limits_from_the_dataclass():
    form = GenerationRunForm()
    assert form.fields["in_flight"].initial == DEFAULTS.in_flight
    assert (form.fields["consistency_k"].min_value, form.fields["consistency_k"].max_value) == LIMITS["consistency_k"]
    assert form.fields["n_hard_negatives"].initial == DEFAULTS.n_hard_negatives


@pytest.mark.django_db
def test_service_stores_the_typed_params(settings):
    run = generation_run_create(params=GenerationParams(n_seeds=0, n_personas=0, in_flight=7), enqueue=False)
    stored = GenerationParams.from_stored(run.params)
    assert stored.in_flight == 7 and stored.generator_model == settings.LIMRANK_GENERATOR_MODEL
    with pytest.raises(ValidationError):
        generation_run_create(params=GenerationParams(n_seeds=0, n_personas=0), in_flight=3, enqueue=False)


@pytest.mark.django_db
def test_command_reports_the_field_out_of_range():
    with pytest.raises(CommandError, match="consistency_k"):
        call_command("synthesize", "--seeds", "0", "--personas", "0", "--consistency", "99", stdout=StringIO())


@pytest.mark.django_db
def test_api_launches_a_run_with_typed_params_and_names_a_bad_field(client, django_capture_on_commit_callbacks):
    client.force_login(factories.admin(username="gen-admin"))
    with django_capture_on_commit_callbacks() as callbacks:
        r = client.post("/api/generation-runs/", {"n_seeds": 0, "n_personas": 0, "in_flight": 8},
                        content_type="application/json")
    assert r.status_code == 201, r.content
    assert r.json()["params"]["in_flight"] == 8 and r.json()["params"]["consistency_k"] == DEFAULTS.consistency_k
    assert len(callbacks) == 1  # enqueued after commit
    bad = client.post("/api/generation-runs/", {"consistency_k": 99}, content_type="application/json")
    assert bad.status_code == 400 and "consistency_k" in bad.json()

