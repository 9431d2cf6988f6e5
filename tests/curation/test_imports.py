"""Imports: real MS MARCO / PersonaHub files, JSONL variants, Rank1-format examples; bad files import nothing."""
import io
import json

import pytest
from django.core.management import CommandError, call_command

from curation.models import Dataset, Example, GeneratedQuery, Passage, Persona, SeedQuery
from curation.services.imports import ImportValidationError, examples_import, personas_import, seeds_import

pytestmark = pytest.mark.django_db


def jsonl(*rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


def test_msmarco_topics_import_then_reimport_counts_duplicates(shared_data):
    path = shared_data / "msmarco" / "topics.msmarco-passage.dev-subset.txt"
    n_lines = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    first = seeds_import(file=path, filename=path.name)
    assert first.created == SeedQuery.objects.count() == n_lines and first.duplicates == 0
    seed = SeedQuery.objects.get(external_id="2")
    assert seed.text == "Androgen receptor define" and seed.source == "msmarco"  # leading space stripped
    again = seeds_import(file=path.read_bytes(), filename=path.name)
    assert (again.created, again.duplicates) == (0, n_lines)
    assert SeedQuery.objects.count() == n_lines


def test_personahub_import(shared_data):
    path = shared_data / "personahub" / "personas_from_tool.jsonl"
    with path.open("rb") as fh:
        result = personas_import(file=fh, filename=path.name)
    assert result.created == Persona.objects.count() == 5000
    assert Persona.objects.filter(text__startswith="A WWII veteran").exists()


def test_seed_jsonl_variants_and_in_file_duplicates():
    data = jsonl({"_id": "q1", "text": "what is a roth ira"}, {"qid": 7, "query": "how do tides work"},
                 {"query": "what  is a roth ira"})  # same text after whitespace normalisation
    result = seeds_import(file=data, filename="seeds.jsonl")
    assert (result.created, result.duplicates, result.lines) == (2, 1, 3)
    assert set(SeedQuery.objects.values_list("external_id", flat=True)) == {"q1", "7"}


@pytest.mark.parametrize(
    "data, filename, line, field, words",
    [
        (jsonl({"persona": "a nurse"}, {"persona": "a lawyer"}) + b'{"persona": "a pil', "p.jsonl", 3, "", "not valid JSON"),
        (jsonl({"persona": "a nurse"}, {"persona": 5}), "p.jsonl", 2, "persona", "expected a string, got number"),
        (jsonl({"persona": "a nurse"}) + b'{"persona": "caf\xe9"}\n', "p.jsonl", 2, "", "not valid UTF-8"),
        (jsonl({"persona": "a nurse"}, {"persona": "x" * (10 * 1024 * 1024)}), "p.jsonl", 2, "persona", "more than the 10,000 allowed"),
        (jsonl({"persona": "a nurse"}, ["a list"]), "p.jsonl", 2, "", "expected a JSON object"),
        (jsonl({"persona": "a nurse"}, {"name": "no persona key"}), "p.jsonl", 2, "persona", "missing"),
    ],
    ids=["truncated", "wrong-type", "bad-utf8", "10MB-field", "not-object", "missing-field"],
)
def test_bad_persona_files_import_nothing(data, filename, line, field, words):
    with pytest.raises(ImportValidationError) as info:
        personas_import(file=data, filename=filename)
    err = info.value
    assert err.line == line and err.field == field and words in str(err)
    assert f"line {line}" in str(err)
    assert Persona.objects.count() == 0  # all-or-nothing: the good first line was not written


def test_bad_tsv_and_oversized_query():
    with pytest.raises(ImportValidationError, match=r"line 2.*qid<TAB>query"):
        seeds_import(file=b"1\tgood query\n2 truncated-without-tab\n", filename="topics.tsv")
    with pytest.raises(ImportValidationError) as info:
        seeds_import(file=b"1\tgood query\n2\t" + b"y" * (10 * 1024 * 1024) + b"\n", filename="topics.tsv")
    assert info.value.line == 2 and info.value.field == "query"
    assert SeedQuery.objects.count() == 0


def test_rank1_examples_fields_and_alpaca_rows():
    dataset = Dataset.objects.create(name="mix")
    data = jsonl(
        {"query": "what causes tides", "passage": "Tides are caused by the moon's gravity.", "reasoning": "It explains tides.", "label": True},
        {"query": "what causes tides", "passage": "Tidal pools host anemones.", "reasoning": "Not about causes.", "label": "false"},
        {"instruction": "Determine if the following passage is relevant to the query. Answer only with 'true' or 'false'.",
         "input": "Query: boiling point of water\nPassage: Water boils at 100 C at sea level.\n<think>",
         "output": "The passage gives it.\n</think> true"},
        {"query": "what causes tides", "passage": "Tides are caused by the moon's gravity.", "reasoning": "again", "label": 1},  # duplicate
    )
    result = examples_import(file=data, filename="rank1.jsonl", origin="rank1", dataset=dataset)
    assert (result.created, result.duplicates) == (3, 1)
    assert Example.objects.filter(origin="rank1", status="approved", dataset=dataset).count() == 3
    assert GeneratedQuery.objects.count() == 2  # one row per distinct query
    neg = Example.objects.get(intended_label=False)
    assert neg.passage.kind == Passage.Kind.HARD_NEGATIVE and neg.reasoning_trace == "Not about causes."
    alpaca = Example.objects.get(query__text="boiling point of water")
    assert alpaca.intended_label is True and alpaca.reasoning_trace == "The passage gives it."
    again = examples_import(file=data, filename="rank1.jsonl", origin="imported")
    assert (again.created, again.duplicates) == (0, 4)


def test_examples_bad_label_and_origin_import_nothing():
    data = jsonl({"query": "q", "passage": "p", "label": True}, {"query": "q2", "passage": "p2", "label": "yes"})
    with pytest.raises(ImportValidationError) as info:
        examples_import(file=data, filename="x.jsonl", origin="imported")
    assert info.value.line == 2 and info.value.field == "label"
    with pytest.raises(ImportValidationError, match="origin"):
        examples_import(file=data, filename="x.jsonl", origin="synthetic")
    assert Example.objects.count() == GeneratedQuery.objects.count() == Passage.objects.count() == 0


def test_imported_examples_default_to_review_queue():
    examples_import(file=jsonl({"query": "q", "passage": "p", "label": False}), filename="x.jsonl", origin="imported")
    assert Example.objects.get().status == Example.Status.PENDING_REVIEW


def test_commands_import_and_reject_with_line(tmp_path, shared_data):
    out = io.StringIO()
    call_command("import_personas", str(shared_data / "personahub" / "personas_from_tool.jsonl"), stdout=out, stderr=io.StringIO())
    assert "5000 imported" in out.getvalue()
    bad = tmp_path / "seeds.jsonl"
    bad.write_bytes(jsonl({"query": "ok"}, {"query": ["not", "a", "string"]}))
    with pytest.raises(CommandError, match=r"line 2, field 'query'.*nothing was imported"):
        call_command("import_seeds", str(bad), stdout=io.StringIO(), stderr=io.StringIO())
    assert SeedQuery.objects.count() == 0
    ex = tmp_path / "ex.jsonl"
    ex.write_bytes(jsonl({"query": "q", "passage": "p", "reasoning": "r", "label": True}))
    call_command("import_examples", str(ex), "--origin", "rank1", "--dataset", "rank1-mix", stdout=io.StringIO(), stderr=io.StringIO())
    assert Example.objects.get().dataset.name == "rank1-mix"


def test_examples_import_is_streamed_in_chunks_and_still_all_or_nothing(monkeypatch, tmp_path):
    """Chunks written before a bad line are rolled back with it; duplicates across chunks are still found, and one
    query shared by rows of different chunks is one row (issue 21: memory flat in the file's size)."""
    from curation.services import imports

    monkeypatch.setattr(imports, "IMPORT_CHUNK", 2)
    rows = [{"query": "shared query" if i % 2 else f"query {i}", "passage": f"passage {i}", "label": i % 3 == 0}
            for i in range(7)]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl(*rows[:5]) + b'{"query": "q", "label": true}\n' + jsonl(*rows[5:]))
    with pytest.raises(ImportValidationError) as info:
        examples_import(file=bad, filename="bad.jsonl", origin="imported")
    assert (info.value.line, info.value.field) == (6, "passage")
    assert not Example.objects.exists() and not GeneratedQuery.objects.exists() and not Passage.objects.exists()
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(*rows, rows[0], rows[3]))  # two repeats, in later chunks
    ticks = []
    result = examples_import(file=good, filename="good.jsonl", origin="imported", progress=lambda d, t: ticks.append((d, t)))
    assert (result.lines, result.created, result.duplicates) == (9, 7, 2)
    assert GeneratedQuery.objects.filter(text="shared query").count() == 1  # rows 1, 3, 5 in chunks 1, 2, 3
    assert result.details["queries"] == 5 and ticks[-1] == (9, 9)


def test_later_imports_share_query_and_passage_rows_but_never_the_pipelines():
    """A query (with its instruction) or passage (title, text, kind, source) imported before is found in the database
    and reused, by a later chunk or a later file; the pipeline's own query of the same text is not touched."""
    from tests import factories

    generated = factories.GeneratedQueryFactory(text="what causes tides", variant="original",
                                                generation_run=factories.GenerationRunFactory())
    first = examples_import(file=jsonl({"query": "what causes tides", "passage": "The moon.", "label": True},
                                       {"query": "what causes tides", "instruction": "be strict", "passage": "The moon.", "label": True}),
                            filename="a.jsonl", origin="rank1")
    assert (first.created, first.details["queries"], first.details["passages"]) == (2, 2, 1)
    second = examples_import(file=jsonl({"query": "what causes tides", "passage": "Anemones.", "label": False},
                                        {"query": "what causes tides", "passage": "The moon.", "title": "Tides", "label": True},
                                        {"query": "what causes tides", "passage": "The moon.", "label": False}),
                             filename="b.jsonl", origin="rank1")
    assert (second.created, second.details["queries"], second.details["passages"]) == (3, 0, 3)  # new title, new kind
    plain = GeneratedQuery.objects.get(text="what causes tides", instruction="", generation_run=None)
    assert Example.objects.filter(query=plain).count() == 4 and not Example.objects.filter(query=generated).exists()
    moon = Passage.objects.get(text="The moon.", title="", kind="positive")
    assert Example.objects.filter(passage=moon).count() == 2
    other_source = examples_import(file=jsonl({"query": "what causes tides", "passage": "The moon.", "label": True,
                                               "reasoning": "It is."}), filename="c.jsonl", origin="imported")
    assert other_source.duplicates == 1  # the same example (content hash) whatever its source


def test_import_memory_is_flat_in_the_files_size(monkeypatch):
    """Traced peak while importing 2,000 and then 8,000 distinct rows (files of 1.4 and 5.7 MB: both above the 1 MB
    blocks the line count reads), 200 at a time: the same within a margin far below what keeping a key per distinct
    query and passage of the file would add (~200 bytes a row)."""
    import tracemalloc

    from curation.services import imports

    monkeypatch.setattr(imports, "IMPORT_CHUNK", 200)
    peaks = []
    for n, tag in ((2_000, "s"), (8_000, "b")):
        data = jsonl(*({"query": f"query {tag}{i}", "passage": f"passage {tag}{i} " + "text " * 100, "label": i % 2 == 0,
                        "reasoning": "because " * 40} for i in range(n)))
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        result = examples_import(file=io.BytesIO(data), filename=f"{tag}.jsonl", origin="imported")
        peaks.append(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()
        assert result.created == n
    assert peaks[1] < peaks[0] + 400_000, peaks


@pytest.mark.postgres
def test_long_import_takes_statistics_of_its_own_rows_inside_its_transaction(monkeypatch):
    """Rows copied in by this transaction are invisible to autovacuum; without statistics that count them the planner
    estimated `query_id IS NULL` at a few hundred rows and looked every hash up through the query_id index, scanning
    every imported passage per lookup (an import quadratic in its size). After the first chunks the import ANALYZEs
    what it wrote: the statistics the later lookups plan with see this import's passages, all without a query."""
    from django.db import connection

    from curation.services import imports

    monkeypatch.setattr(imports, "IMPORT_CHUNK", 50)
    calls = []
    real_refresh = imports.bulk_statistics_refresh
    monkeypatch.setattr(imports, "bulk_statistics_refresh", lambda **kw: calls.append(1) or real_refresh(**kw))
    data = jsonl(*({"query": f"q{i}", "passage": f"p{i}", "label": True} for i in range(420)))
    assert examples_import(file=io.BytesIO(data), filename="a.jsonl", origin="imported").created == 420
    assert len(calls) == 4  # after chunks 1, 2, 4 and 8 of 9
    with connection.cursor() as cur:
        cur.execute("SELECT null_frac FROM pg_stats WHERE tablename = 'curation_passage' AND attname = 'query_id'")
        assert cur.fetchone() == (1.0,)
        cur.execute("SELECT reltuples FROM pg_class WHERE relname = 'curation_passage'")
        assert cur.fetchone()[0] >= 400  # sampled after chunk 8: 400 of this test's own passages
