"""A real Celery worker diagnoses a built version once its files are rendered (both brokers; no eager mode)."""
import pytest

from curation.models import DatasetVersion
from curation.services.datasets import dataset_version_build
from tests import factories
from tests.conftest import celery_worker, wait_for
from tests.curation.api.conftest import make_examples

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_worker_diagnoses_a_built_version(broker_url, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    ds = factories.DatasetFactory(name="diagnosed by a worker")
    make_examples(12, dataset=ds, tag="diag")
    with celery_worker(broker_url, queues=("llm",)):  # curation.tasks.* are routed to the llm queue
        version = dataset_version_build(dataset=ds, filters={}, recipe={"seed": 2})
        assert wait_for(lambda: DatasetVersion.objects.get(pk=version.pk).diagnostics.get("status") in ("done", "failed"),
                        timeout=120)
    d = DatasetVersion.objects.get(pk=version.pk).diagnostics
    assert d["status"] == "done", d.get("error")
    assert d["examples"] == 12 and set(d["shortcuts"]["features"]) == {"passage_length", "length_ratio", "bm25",
                                                                        "lexical_overlap"}
    assert "duplicate_queries" in d and d["contamination"]["ngram"] == 13
