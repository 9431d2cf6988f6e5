"""Collections as they ship: FollowIR in its public layout (fixture: fixtures/followir-public/README.md) scored
with p-MRR, classic TREC SGML documents, real TREC topics, and ir_datasets ids."""
from __future__ import annotations

import gzip
import json
import sys
import types
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from evaluation import services
from evaluation.benchmarks import BenchmarkFormatError, parse_followir, read_corpus, read_run, read_topics
from evaluation.metrics import changed_documents, rank_change_score
from evaluation.models import Benchmark, BenchmarkDocument, BenchmarkQuery
from tests.evaluation.conftest import minilm_path

FOLLOWIR = Path(__file__).parent / "fixtures" / "followir-public"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_followir_public_layout_parses():
    parsed = parse_followir(FOLLOWIR, name="core17-mini")
    assert parsed.format == "followir" and parsed.primary_metric == "p_mrr"
    assert sorted(parsed.queries) == ["907", "908"]  # 909 has no original judgments: dropped, as mteb drops it
    q = parsed.queries["907"]
    src = next(r for r in _jsonl(FOLLOWIR / "queries.jsonl") if r["_id"] == "907")
    assert (q.text, q.instruction, q.changed_instruction) == (src["text"], src["instruction_og"], src["instruction_changed"])
    assert parsed.qrels["og"]["907"]["FT-1"] == 1 and parsed.qrels["changed"]["907"]["FT-1"] == 0
    assert changed_documents(parsed.qrels["og"], parsed.qrels["changed"]) == {"907": ["FT-1"], "908": ["LA-4"]}
    assert parsed.documents["FT-2"][0] == "Brazil starts river power plant" and parsed.documents["LA-4"][0] == ""
    # top_ranked keeps its listed order as the ranking, and only the kept queries.
    assert list(parsed.runs["top_ranked"]) == ["907", "908"]
    top = parsed.runs["top_ranked"]["907"]
    assert sorted(top, key=top.get, reverse=True) == ["FT-2", "FT-1", "LA-5", "FT-6", "FT-3", "LA-4"]


def _copy_fixture(tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(FOLLOWIR, tmp_path / "fi"))


def test_followir_public_layout_errors_say_where(tmp_path):
    root = _copy_fixture(tmp_path)
    lines = (root / "qrels_changed" / "test.jsonl").read_text().splitlines()
    lines[3] = lines[3].replace('"score": 0.0', '"score": "high"')
    (root / "qrels_changed" / "test.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(BenchmarkFormatError, match=r"test.jsonl, line 4, field 'score': not an integer"):
        parse_followir(root, name="x")
    (root / "qrels_og" / "test.jsonl").unlink()
    with pytest.raises(BenchmarkFormatError, match=r"test.jsonl: missing"):
        parse_followir(root, name="x")
    root = _copy_fixture(tmp_path / "2")
    rows = _jsonl(root / "queries.jsonl")
    del rows[1]["instruction_changed"]
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BenchmarkFormatError, match=r"queries.jsonl, line 2, field 'instruction_changed': missing"):
        parse_followir(root, name="x")


def _p_mrr_by_hand(og_run, changed_run, og_qrels_rows, changed_qrels_rows) -> float:
    """mteb's evaluate_change, written out: per query, over the documents whose judgment changed, the rank
    change score of each document's rank under the original and under the changed instruction."""
    og = {(r["query-id"], r["corpus-id"]): r["score"] for r in og_qrels_rows}
    changed = {(r["query-id"], r["corpus-id"]): r["score"] for r in changed_qrels_rows}
    per_query = {}
    for (qid, docid), score in og.items():
        if changed[(qid, docid)] == score:
            continue
        ranks = []
        for run in (og_run, changed_run):
            ordered = sorted(run[qid].items(), key=lambda x: x[1], reverse=True)
            ranks.append(next(i + 1 for i, (d, _) in enumerate(ordered) if d == docid))
        per_query.setdefault(qid, []).append(rank_change_score(*ranks))
    return sum(sum(v) / len(v) for v in per_query.values()) / len(per_query)


@pytest.mark.django_db
def test_followir_public_layout_scores_end_to_end_with_p_mrr(artifacts_dir):
    out = StringIO()
    call_command("import_benchmark", str(FOLLOWIR), format="followir", name="core17-mini", stdout=out)
    assert "core17-mini: 2 queries, 7 documents" in out.getvalue()
    bench = Benchmark.objects.get(name="core17-mini")
    assert services.benchmark_first_stages(bench) == ["bm25", "top_ranked"]
    assert BenchmarkQuery.objects.get(benchmark=bench, qid="908").changed_instruction.startswith("A relevant document reports a fall in the price of solar")

    bm25 = services.reranker_model_register(name="bm25", kind="bm25")
    run = services.eval_run_create(benchmark=bench, model=bm25, first_stage="top_ranked", top_k=100, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.metrics["p_mrr"] == 0.0  # the same ranking under both instructions: no change

    import torch

    torch.manual_seed(0)  # MiniLM's classification head is untrained: seeded, its scores are the same every time
    model = services.reranker_model_register(name="minilm", kind="cross-encoder", path=minilm_path())
    run = services.eval_run_create(benchmark=bench, model=model, first_stage="top_ranked", top_k=100, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    og_run, changed_run = read_run(run.run_file), read_run(services.eval_run_dir(run) / "run.changed.trec")
    top = {r["qid"]: set() for r in _jsonl(FOLLOWIR / "top_ranked.jsonl")}
    for r in _jsonl(FOLLOWIR / "top_ranked.jsonl"):
        top[r["qid"]].add(r["pid"])
    assert {q: set(d) for q, d in og_run.items()} == {q: top[q] for q in ("907", "908")}  # exactly the candidates
    assert og_run != changed_run  # the changed instruction reached the reranker
    expected = _p_mrr_by_hand(og_run, changed_run, _jsonl(FOLLOWIR / "qrels_og" / "test.jsonl"),
                              _jsonl(FOLLOWIR / "qrels_changed" / "test.jsonl"))
    assert run.metrics["p_mrr"] == pytest.approx(expected, abs=1e-12)
    assert run.metrics["p_mrr"] != 0.0  # with this seed a changed document moves


@pytest.mark.django_db
def test_followir_hub_offline_is_a_clear_error(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(CommandError, match=r"nothing imported: hub:jhu-clsp/core17-instructions: cannot load config 'queries'"):
        call_command("import_benchmark", "core17", format="followir", name="c17", online=True, stdout=StringIO())
    assert not Benchmark.objects.exists()


# ---------------------------------------------------------------- TREC as it ships

SGML = """<DOC>
<DOCNO> FT911-1 </DOCNO>
<PROFILE>_AN-BEOA7AAIFT</PROFILE>
<DATE>910514</DATE>
<HEADLINE>
FT  14 MAY 91 / Cartel &amp; couriers held
</HEADLINE>
<TEXT>
Police arrested members of a cocaine cartel that shipped drugs from Colombia to Europe.
</TEXT>
</DOC>
<DOC>
<DOCNO> LA010189-0001 </DOCNO>
<HEADLINE><P>POLIO CASES FALL</P></HEADLINE>
<TEXT>
<P>The number of poliomyelitis cases fell again this year.</P>
<P>Vaccination campaigns continue.</P>
</TEXT>
</DOC>
<DOC><DOCNO>FBIS3-1</DOCNO><TI>Wind power</TI><TEXT>Nothing about crime or polio.</TEXT></DOC>
"""


def test_trec_sgml_documents(tmp_path):
    path = tmp_path / "doc-text.trec.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(SGML)
    docs = read_corpus(path)
    assert docs == {
        "FT911-1": ("FT 14 MAY 91 / Cartel & couriers held",
                    "Police arrested members of a cocaine cartel that shipped drugs from Colombia to Europe."),
        "LA010189-0001": ("POLIO CASES FALL", "The number of poliomyelitis cases fell again this year. Vaccination campaigns continue."),
        "FBIS3-1": ("Wind power", "Nothing about crime or polio."),
    }
    folder = tmp_path / "disk"
    (folder / "ft").mkdir(parents=True)
    (folder / "ft" / "ft911_1").write_text(SGML.split("<DOC>\n<DOCNO> LA")[0])
    (folder / "la010189").write_text("<DOC>\n<DOCNO> LA" + SGML.split("<DOC>\n<DOCNO> LA")[1])
    assert read_corpus(folder) == docs


@pytest.mark.parametrize("text, where", [
    ("<DOC>\n<TEXT>no number</TEXT>\n</DOC>\n", r"doc.trec, line 1, field 'DOCNO': <DOC> without a <DOCNO>"),
    ("<DOC>\n<DOCNO>A</DOCNO>\n<TEXT>x</TEXT>\n<DOC>\n", r"doc.trec, line 4: <DOC> inside another <DOC>"),
    ("<DOC>\n<DOCNO>A</DOCNO>\n<TEXT>x</TEXT>\n</DOC>\n<DOC>\n<DOCNO>B</DOCNO>\n", r"doc.trec, line 5: <DOC> not closed"),
    ("<DOC>\n<DOCNO>A</DOCNO>\n</DOC>\nstray text\n", r"doc.trec, line 4: text outside a <DOC> block"),
])
def test_bad_sgml_says_where(tmp_path, text, where):
    path = tmp_path / "doc.trec"
    path.write_text(text)
    with pytest.raises(BenchmarkFormatError, match=where):
        read_corpus(path)


def test_real_trec_topics(shared_data):
    robust = read_topics(shared_data / "trec-core17-robust04" / "topics.robust04.txt")
    core = read_topics(shared_data / "trec-core17-robust04" / "topics.core17.txt")
    assert len(robust) == 250 and len(core) == 50
    assert robust["301"].text == "International Organized Crime"
    assert robust["301"].instruction.startswith("A relevant document must as a minimum identify the organization")
    assert read_topics(shared_data / "trec-core17-robust04" / "topics.robust04.txt", field_name="desc")["302"].text == \
        "Is the disease of Poliomyelitis (polio) under control in the world?"
    assert all(t.text and t.instruction for t in core.values())


@pytest.mark.django_db
def test_import_benchmark_trec_with_an_sgml_corpus(shared_data, tmp_path, artifacts_dir):
    """The command that used to stop at 'line 1: ragged line': real Robust04 topics, an SGML corpus, BM25 over it."""
    corpus = tmp_path / "doc-text.trec"
    corpus.write_text(SGML)
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("301 0 FT911-1 1\n301 0 FBIS3-1 0\n302 0 LA010189-0001 1\n302 0 FBIS3-1 0\n")
    out = StringIO()
    call_command("import_benchmark", str(shared_data / "trec-core17-robust04" / "topics.robust04.txt"), format="trec",
                 name="robust04-mini", qrels=str(qrels), corpus=str(corpus), stdout=out)
    assert "robust04-mini: 250 queries, 3 documents, 4 judgments" in out.getvalue()
    bench = Benchmark.objects.get(name="robust04-mini")
    assert BenchmarkDocument.objects.get(benchmark=bench, docid="LA010189-0001").title == "POLIO CASES FALL"
    run = services.eval_run_create(benchmark=bench, model=services.reranker_model_register(name="bm25", kind="bm25"),
                                   top_k=3, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    ranked = read_run(run.run_file)
    assert max(ranked["302"], key=ranked["302"].get) == "LA010189-0001"


# ---------------------------------------------------------------- ir_datasets

@pytest.mark.django_db
def test_ir_datasets_not_installed_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ir_datasets", None)  # import fails as when the package is absent
    with pytest.raises(CommandError, match=r"ir_datasets:disks45/nocr/trec-robust-2004: ir_datasets is not installed"):
        call_command("import_benchmark", "disks45/nocr/trec-robust-2004", format="ir_datasets", name="r04", stdout=StringIO())
    assert not Benchmark.objects.exists()


def _fake_ir_datasets(*, docs_available: bool):
    """The part of ir_datasets' API the importer uses (load, *_iter, has_*), with its namedtuple field names."""
    from collections import namedtuple

    Doc = namedtuple("GenericDoc", ["doc_id", "title", "body"])
    Query = namedtuple("TrecQuery", ["query_id", "title", "description", "narrative"])
    Qrel = namedtuple("TrecQrel", ["query_id", "doc_id", "relevance", "iteration"])

    class Dataset:
        def has_docs(self): return True
        def has_queries(self): return True
        def has_qrels(self): return True

        def docs_iter(self):
            if not docs_available:
                raise FileNotFoundError("disks45/corpus not found: ir_datasets wants the TREC disks 4 and 5")
            yield Doc("FT911-1", "Cartel held", "Police arrested members of a cartel.")
            yield Doc("LA010189-0001", "Polio", "Polio cases fell.")

        def queries_iter(self):
            yield Query("301", "International Organized Crime", "Identify organizations...", "A relevant document must ...")
            yield Query("302", "Poliomyelitis and Post-Polio", "Is polio under control?", "Relevant documents should ...")

        def qrels_iter(self):
            yield Qrel("301", "FT911-1", 1, "0")
            yield Qrel("302", "LA010189-0001", 2, "0")

    def load(dataset_id):
        if dataset_id != "disks45/nocr/trec-robust-2004":
            raise KeyError(dataset_id)
        return Dataset()

    return types.SimpleNamespace(load=load)


@pytest.mark.django_db
def test_ir_datasets_id_when_the_data_is_local(monkeypatch):
    monkeypatch.setitem(sys.modules, "ir_datasets", _fake_ir_datasets(docs_available=True))
    bench = services.benchmark_import_path(format="ir_datasets", path="disks45/nocr/trec-robust-2004", name="r04")[0]
    assert (bench.n_queries, bench.n_documents, bench.n_qrels) == (2, 2, 2)
    q = BenchmarkQuery.objects.get(benchmark=bench, qid="301")
    assert q.text == "International Organized Crime" and q.instruction == "A relevant document must ..."
    assert BenchmarkDocument.objects.get(benchmark=bench, docid="FT911-1").text == "Police arrested members of a cartel."
    assert bench.source == "ir_datasets:disks45/nocr/trec-robust-2004"


@pytest.mark.django_db
def test_ir_datasets_without_local_data_imports_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "ir_datasets", _fake_ir_datasets(docs_available=False))
    with pytest.raises(CommandError, match=r"data not available locally \(FileNotFoundError: disks45/corpus not found"):
        call_command("import_benchmark", "disks45/nocr/trec-robust-2004", format="ir_datasets", name="r04", stdout=StringIO())
    with pytest.raises(CommandError, match="unknown ir_datasets id"):
        call_command("import_benchmark", "no/such", format="ir_datasets", name="r04", stdout=StringIO())
    assert not Benchmark.objects.exists()


def test_followir_public_files_through_the_import_form(admin_client, artifacts_dir):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    up = lambda rel: SimpleUploadedFile(Path(rel).name, (FOLLOWIR / rel).read_bytes())  # noqa: E731
    r = admin_client.post(reverse("evaluation:benchmark_import"), {
        "format": "followir", "name": "fi-form", "queries": up("queries.jsonl"), "qrels": up("qrels_og/test.jsonl"),
        "changed_qrels": up("qrels_changed/test.jsonl"), "corpus": up("corpus.jsonl"), "run": up("top_ranked.jsonl")})
    assert r.status_code == 302, r.content.decode()[-3000:]
    bench = Benchmark.objects.get(name="fi-form")
    assert (bench.n_queries, bench.n_documents) == (2, 7)
    assert read_run(services.benchmark_run_path(bench, "top_ranked")) == parse_followir(FOLLOWIR, name="x").runs["top_ranked"]
