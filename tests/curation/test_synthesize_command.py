"""manage.py synthesize: the same service in the foreground, with --resume."""
import io

import pytest
from django.core.management import CommandError, call_command

from curation.models import Example, GenerationRun
from limrank_app.jobs import JobStatus
from tests.curation.synth_helpers import llm_server, llm_settings, shared_pool  # noqa: F401

pytestmark = pytest.mark.django_db


def test_synthesize_runs_in_foreground_and_resume(llm_settings, llm_server, shared_pool):
    out, err = io.StringIO(), io.StringIO()
    call_command("synthesize", "--seeds", "2", "--personas", "1", "--in-flight", "8", "--consistency", "1",
                 "--dataset", "synthetic", stdout=out, stderr=err)
    run = GenerationRun.objects.get()
    assert run.status == JobStatus.SUCCEEDED and run.dataset.name == "synthetic"
    assert f"run {run.pk} succeeded: kept {run.stats['kept']}" in out.getvalue()
    assert "example" in err.getvalue()  # the tqdm bar
    assert Example.objects.filter(generation_run=run).exists()
    with pytest.raises(CommandError, match="already succeeded"):
        call_command("synthesize", "--resume", str(run.pk), stdout=io.StringIO(), stderr=io.StringIO())
    GenerationRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED)
    before = Example.objects.count()
    requests = llm_server.counts["requests"]
    call_command("synthesize", "--resume", str(run.pk), stdout=io.StringIO(), stderr=io.StringIO())
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and Example.objects.count() == before
    assert llm_server.counts["requests"] == requests


def test_synthesize_rejects_bad_sizes(llm_settings):
    with pytest.raises(CommandError, match="in_flight"):
        call_command("synthesize", "--seeds", "1", "--personas", "1", "--in-flight", "0", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="no generation run"):
        call_command("synthesize", "--resume", "999", stdout=io.StringIO(), stderr=io.StringIO())
