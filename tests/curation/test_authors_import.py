"""The authors' released training data in its published schema (fixture: tests/curation/fixtures/authors/README.md):
import from JSONL, parquet and a JSON array, all-or-nothing with the row and column named, and the paper's
mixing recipe (rank1 + synthetic) built from what was imported."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.protocol import training_example as rank1_example
from curation.models import Dataset, Example
from curation.services.datasets import dataset_version_build
from curation.services.imports import ImportValidationError, examples_import_authors

FIXTURES = Path(__file__).parent / "fixtures" / "authors"
RANK1 = FIXTURES / "rank1-train.jsonl"
LIMRANK = FIXTURES / "train_limrank.json"

pytestmark = pytest.mark.django_db


def _rows(path: Path) -> list[dict]:
    text = path.read_text()
    return json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines() if line]


def test_fixture_rows_are_in_the_published_schema():
    for path in (RANK1, LIMRANK):
        for row in _rows(path):
            assert sorted(row) == ["input", "instruction", "output"]
            assert row["instruction"] == "Determine if the following passage is relevant to the query. Answer only with 'true' or 'false'."
            assert row["input"].startswith("Query: ") and "\nPassage: " in row["input"]
            assert row["output"].endswith(("</think> true", "</think> false"))


def test_rank1_rows_import_and_give_back_the_same_prompt():
    """Import then the studio's own training-row builder: the prompt (instruction + "\\n" + input) is the
    published row's, and the reasoning and answer are the same."""
    result = examples_import_authors(format="rank1-hf", file=RANK1)
    assert (result.created, result.duplicates, result.lines) == (4, 0, 4)
    published = _rows(RANK1)
    examples = list(Example.objects.select_related("query", "passage").order_by("id"))
    assert [e.origin for e in examples] == ["rank1"] * 4 and {e.status for e in examples} == {"approved"}
    assert [e.intended_label for e in examples] == [True, False, True, False]
    for row, ex in zip(published, examples):
        rebuilt = rank1_example(query=ex.query.text, passage_title=ex.passage.title, passage_text=ex.passage.text,
                                reasoning=ex.reasoning_trace, label=ex.intended_label, instruction=ex.query.instruction)
        assert rebuilt["instruction"] + "\n" + rebuilt["input"] == row["instruction"] + "\n" + row["input"]
        reasoning, answer = row["output"].rsplit("</think>", 1)
        assert ex.reasoning_trace == reasoning.strip() and answer.strip() == ("true" if ex.intended_label else "false")
    # The two judgments of the first query share one query row.
    assert examples[0].query_id == examples[1].query_id


def test_parquet_as_on_the_hub(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(_rows(RANK1)), path)
    assert examples_import_authors(format="rank1-hf", file=path).created == 4
    # A second import of the same rows creates nothing.
    again = examples_import_authors(format="rank1-hf", file=RANK1)
    assert (again.created, again.duplicates) == (0, 4)


def test_think_may_open_the_output_instead_of_closing_the_input(tmp_path):
    row = _rows(RANK1)[0]
    moved = dict(row, input=row["input"].removesuffix("\n<think>"), output="<think>\n" + row["output"])
    path = tmp_path / "moved.jsonl"
    path.write_text(json.dumps(moved) + "\n")
    examples_import_authors(format="rank1-hf", file=path)
    assert Example.objects.get().reasoning_trace == row["output"].rsplit("</think>", 1)[0].strip()


@pytest.mark.parametrize("change, where", [
    (lambda r: r.pop("output"), r"row 2, field 'output': missing column"),
    (lambda r: r.update(instruction="Is this passage relevant?"), r"row 2, field 'instruction': expected Rank1's instruction"),
    (lambda r: r.update(input="Passage only"), r"row 2, field 'input': expected 'Query: ...'"),
    (lambda r: r.update(output="no closing tag true"), r"row 2, field 'output': expected the reasoning"),
    (lambda r: r.update(output=["a", "list"]), r"row 2, field 'output': expected a string"),
])
def test_bad_rows_import_nothing_and_say_where(tmp_path, change, where):
    rows = _rows(LIMRANK)
    change(rows[1])
    path = tmp_path / "train_limrank.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(ImportValidationError, match=where):
        examples_import_authors(format="limrank-hf", file=path)
    assert Example.objects.count() == 0


def test_bad_jsonl_line_is_named(tmp_path):
    lines = RANK1.read_text().splitlines()
    lines[2] = lines[2][:-20]  # a truncated line
    path = tmp_path / "rank1.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportValidationError, match=r"rank1\.jsonl, line 3: not valid JSON"):
        examples_import_authors(format="rank1-hf", file=path)
    assert Example.objects.count() == 0


def test_paper_recipe_builds_from_the_authors_data():
    """rank1-hf first, then limrank-hf: LimRank's repeats of Rank1 rows are skipped, its new rows are synthetic;
    the paper's mix (rank1 + synthetic, here scaled down from 14000 + 6000) builds a frozen version."""
    out = io.StringIO()
    call_command("import_examples", "--format", "rank1-hf", str(RANK1), "--dataset", "limrank-paper", stdout=out, stderr=io.StringIO())
    assert "4 imported" in out.getvalue()
    out = io.StringIO()
    call_command("import_examples", "--format", "limrank-hf", str(LIMRANK), "--dataset", "limrank-paper", stdout=out, stderr=io.StringIO())
    assert "3 imported, 2 duplicates skipped" in out.getvalue()
    dataset = Dataset.objects.get(name="limrank-paper")
    assert dict(Example.objects.filter(dataset=dataset).values_list("origin").annotate(n=__import__("django").db.models.Count("id"))) == {
        "rank1": 4, "synthetic": 3}
    version = dataset_version_build(dataset=dataset, filters=None, recipe={"seed": 12345, "mix": {"rank1": 3, "synthetic": 2}})
    members = list(version.members.order_by("position"))
    assert version.example_count == 5 and sorted(m.origin for m in members) == ["rank1"] * 3 + ["synthetic"] * 2
    # The same recipe on the same data selects the same examples (content-hash order, seeded sampling).
    again = dataset_version_build(dataset=dataset, filters=None, recipe={"seed": 12345, "mix": {"rank1": 3, "synthetic": 2}})
    assert again.content_hash == version.content_hash
    # The full paper recipe says what is missing instead of building something else.
    with pytest.raises(ValidationError, match=r"14000 rank1 examples asked, 4 available; 6000 synthetic examples asked, 3 available"):
        dataset_version_build(dataset=dataset, filters=None, recipe={"mix": {"rank1": 14000, "synthetic": 6000}})


def test_command_errors(tmp_path):
    with pytest.raises(CommandError, match="--origin rank1\\|imported is required"):
        call_command("import_examples", str(RANK1), stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="FILE is required"):
        call_command("import_examples", "--format", "rank1-hf", stdout=io.StringIO(), stderr=io.StringIO())
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"instruction": "x"}\n')
    with pytest.raises(CommandError, match=r"x\.jsonl, line 1, field 'input': missing column.*nothing was imported"):
        call_command("import_examples", "--format", "rank1-hf", str(bad), "--dataset", "new", stdout=io.StringIO(), stderr=io.StringIO())
    assert not Dataset.objects.filter(name="new").exists()


def test_online_without_network_says_so(monkeypatch):
    """The hub path is lazy and offline here: a clear error, nothing written (never a download in tests)."""
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ImportValidationError, match=r"cannot load jhu-clsp/rank1-training-data from the hub"):
        examples_import_authors(format="rank1-hf", online=True)
    assert Example.objects.count() == 0


def test_api_and_upload_page_take_the_authors_files(client, admin_user, reviewer_user):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    client.force_login(reviewer_user)
    upload = lambda path: SimpleUploadedFile(path.name, path.read_bytes())  # noqa: E731
    assert client.post("/api/examples/import/", {"file": upload(RANK1), "format": "rank1-hf"}).status_code == 403
    client.force_login(admin_user)
    r = client.post("/api/examples/import/", {"file": upload(RANK1), "format": "rank1-hf"})
    assert r.status_code == 201 and r.json()["created"] == 4 and r.json()["details"]["format"] == "rank1-hf"
    rows = _rows(LIMRANK)
    rows[3]["output"] = "no answer"
    bad = SimpleUploadedFile("train_limrank.json", json.dumps(rows).encode())
    r = client.post("/api/examples/import/", {"file": bad, "format": "limrank-hf"})
    assert r.status_code == 400 and r.json()["line"] == 4 and r.json()["field"] == "output"
    assert "row 4" in r.json()["error"]
    r = client.post(reverse("curation:import_upload"), {"kind": "limrank-hf", "file": upload(LIMRANK), "dataset": "lim"})
    assert r.status_code == 302
    assert Example.objects.filter(origin="synthetic", dataset__name="lim").count() == 3
