"""Benchmark loaders: real files import; bad files are refused with file, line and field, and create nothing."""
from __future__ import annotations

import json
import shutil

import pytest

from evaluation import services
from evaluation.benchmarks import BenchmarkFormatError, parse_beir, read_qrels, read_run, read_topics
from evaluation.models import Benchmark, BenchmarkDocument, BenchmarkQuery, Qrel


@pytest.mark.django_db
def test_beir_subset_imports(scifact_small):
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="sf")[0]
    assert (bench.n_queries, bench.n_qrels) == (12, 13)
    n_lines = len((scifact_small / "corpus.jsonl").read_text().splitlines())
    assert BenchmarkDocument.objects.filter(benchmark=bench).count() == bench.n_documents == n_lines > 150
    q = BenchmarkQuery.objects.get(benchmark=bench, qid="1")
    assert q.text == "0-dimensional biomaterials show inductive properties."


def _corrupt(path, lineno, new):
    lines = path.read_text().splitlines(True)
    lines[lineno - 1] = new
    path.write_text("".join(lines))


@pytest.mark.django_db
@pytest.mark.parametrize("case, expect", [
    ("ragged_qrels", ("test.tsv", 3, "ragged line")),
    ("unknown_doc", ("test.tsv", None, "unknown document id '999999999'")),
    ("unknown_query", ("test.tsv", None, "unknown query id 'nope'")),
    ("bad_grade", ("test.tsv", 2, "field 'score'")),
    ("bad_json", ("queries.jsonl", 5, "invalid JSON")),
    ("missing_text", ("corpus.jsonl", 4, "field 'text'")),
])
def test_bad_beir_uploads_create_nothing(scifact_small, case, expect):
    qrels = scifact_small / "qrels" / "test.tsv"
    if case == "ragged_qrels":
        _corrupt(qrels, 3, "3\t14717500\n")
    elif case == "unknown_doc":
        _corrupt(qrels, 4, qrels.read_text().splitlines()[3].split("\t")[0] + "\t999999999\t1\n")
    elif case == "unknown_query":
        _corrupt(qrels, 2, "nope\t31715818\t1\n")
    elif case == "bad_grade":
        _corrupt(qrels, 2, "1\t31715818\thigh\n")
    elif case == "bad_json":
        _corrupt(scifact_small / "queries.jsonl", 5, '{"_id": "x", "text": \n')
    elif case == "missing_text":
        _corrupt(scifact_small / "corpus.jsonl", 4, '{"_id": "d4", "title": "t"}\n')
    with pytest.raises(BenchmarkFormatError) as err:
        services.benchmark_import_path(format="beir", path=scifact_small, name="bad")
    file, line, text = expect
    assert err.value.file.endswith(file)
    assert err.value.line == line
    assert text in str(err.value) and file in str(err.value)
    assert not Benchmark.objects.exists() and not BenchmarkDocument.objects.exists() and not Qrel.objects.exists()


@pytest.mark.django_db
def test_failure_inside_the_transaction_rolls_back(scifact_small, monkeypatch):
    """A failure after the first rows are written (here: the qrels insert) leaves no benchmark behind."""
    parsed = parse_beir(scifact_small, name="half")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Qrel.objects, "bulk_create", boom)
    with pytest.raises(RuntimeError):
        services.benchmark_import(parsed=parsed)
    assert not Benchmark.objects.exists() and not BenchmarkQuery.objects.exists() and not BenchmarkDocument.objects.exists()


@pytest.mark.django_db
def test_duplicate_name_refused(scifact_small):
    services.benchmark_import_path(format="beir", path=scifact_small, name="dup")
    with pytest.raises(services.EvaluationError, match="already exist"):
        services.benchmark_import_path(format="beir", path=scifact_small, name="dup")
    assert Benchmark.objects.count() == 1


@pytest.mark.django_db
def test_trec_import_with_run(shared_data, tmp_path, artifacts_dir):
    """TREC topics + qrels + a first-stage run (trec_eval's own files); no documents: scored from the run."""
    d = shared_data / "trec_eval"
    topics = tmp_path / "topics.tsv"
    topics.write_text("301\tInternational Organized Crime\n302\tPoliomyelitis and Post-Polio\n303\tHubble Telescope Achievements\n")
    bench = services.benchmark_import_path(format="trec", path=None, name="robust-3",
                                           files={"topics": topics, "qrels": d / "qrels.test", "run": d / "results.test",
                                                  "run_name": "STANDARD"})[0]
    assert bench.n_queries == 3 and bench.n_documents == 0
    assert services.benchmark_first_stages(bench) == ["STANDARD"]
    stored = read_run(services.benchmark_run_path(bench, "STANDARD"))
    assert stored == read_run(d / "results.test")  # same scores, rewritten in trec_eval order


@pytest.mark.django_db
def test_trec_run_with_unknown_query_refused(shared_data, tmp_path):
    topics = tmp_path / "topics.tsv"
    topics.write_text("301\tInternational Organized Crime\n302\tPolio\n")  # 303 is judged and retrieved but unknown
    with pytest.raises(BenchmarkFormatError, match="unknown query id '303'"):
        services.benchmark_import_path(format="trec", path=None, name="x",
                                       files={"topics": topics, "qrels": shared_data / "trec_eval" / "qrels.test"})
    assert not Benchmark.objects.exists()


def test_trec_sgml_topics_keep_narrative(shared_data):
    topics = read_topics(shared_data / "trec-core17-robust04" / "topics.core17.txt")
    assert len(topics) == 50
    assert topics["307"].text == "New Hydroelectric Projects"
    assert topics["307"].instruction.startswith("Relevant documents would contain as a minimum")
    robust = read_topics(shared_data / "trec-core17-robust04" / "topics.robust04.txt", field_name="desc")
    assert len(robust) == 250 and robust["301"].text.startswith("Identify organizations that participate")


def test_ragged_run_and_qrels_lines(tmp_path):
    run = tmp_path / "run.trec"
    run.write_text("1 Q0 d1 1 2.0 tag\n1 Q0 d2 2 1.0\n")
    with pytest.raises(BenchmarkFormatError, match=r"run.trec, line 2: ragged line"):
        read_run(run)
    run.write_text("1 Q0 d1 1 high tag\n")
    with pytest.raises(BenchmarkFormatError, match="field 'score'"):
        read_run(run)
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("1 0 d1 1\n1 0 d2\n")
    with pytest.raises(BenchmarkFormatError, match="line 2: ragged line: expected 4 fields, got 3"):
        read_qrels(qrels)


@pytest.mark.django_db
def test_bright_local_all_tasks_with_excluded_ids(shared_data):
    benches = services.benchmark_import_path(format="bright", path=shared_data / "bright", name="BRIGHT")
    assert len(benches) == 12
    assert sum(b.n_queries for b in benches) == 1384
    by_task = {b.task: b for b in benches}
    assert by_task["biology"].n_queries == 103 and by_task["biology"].name == "BRIGHT/biology"
    assert all(b.group == "BRIGHT" and b.n_documents == 0 for b in benches)
    leet = BenchmarkQuery.objects.filter(benchmark=by_task["leetcode"])
    assert sum(len(q.excluded_ids) for q in leet) == 33485
    assert "leetcode/leetcode_1996.txt" in leet.get(qid="0").excluded_ids


@pytest.mark.django_db
def test_bright_bad_exclude_file_creates_no_task(shared_data, tmp_path):
    root = tmp_path / "bright"
    shutil.copytree(shared_data / "bright", root)
    ex = root / "qrels" / "exclude.bright-leetcode.txt"
    ex.chmod(0o644)
    ex.write_text("0 leetcode/leetcode_1.txt\nnot-a-query leetcode/leetcode_2.txt\n")
    with pytest.raises(BenchmarkFormatError, match=r"exclude.bright-leetcode.txt, line 2, field 'qid': unknown query id"):
        services.benchmark_import_path(format="bright", path=root, name="BRIGHT")
    assert not Benchmark.objects.exists()  # biology etc. parsed fine, but nothing was written


def _followir_dir(tmp_path, shared_data, *, n_topics=5):
    """Core17 topics (narrative = original instruction) and qrels; the changed side narrows the instruction and
    makes half of each topic's relevant documents non-relevant."""
    from evaluation.benchmarks import read_topics

    topics = read_topics(shared_data / "trec-core17-robust04" / "topics.core17.txt")
    og = read_qrels(shared_data / "trec-core17-robust04" / "qrels.core17.txt")
    qids = sorted(topics)[:n_topics]
    root = tmp_path / "followir"
    (root / "qrels").mkdir(parents=True)
    with open(root / "queries.jsonl", "w") as fh:
        for q in qids:
            fh.write(json.dumps({"_id": q, "text": topics[q].text, "instruction_og": topics[q].instruction,
                                 "instruction_changed": topics[q].instruction + " Documents published before 2000 are not relevant."}) + "\n")
    og_lines, ch_lines = [], []
    for q in qids:
        rel = sorted(d for d, g in og[q].items() if g > 0)
        flip = set(rel[: len(rel) // 2])
        for d, g in og[q].items():
            og_lines.append(f"{q} 0 {d} {g}\n")
            ch_lines.append(f"{q} 0 {d} {0 if d in flip else g}\n")
    (root / "qrels" / "og.txt").write_text("".join(og_lines))
    (root / "qrels" / "changed.txt").write_text("".join(ch_lines))
    return root, qids


@pytest.mark.django_db
def test_followir_paired_qrels(tmp_path, shared_data):
    root, qids = _followir_dir(tmp_path, shared_data)
    bench = services.benchmark_import_path(format="followir", path=root, name="core17-instructions")[0]
    assert bench.primary_metric == "p_mrr" and bench.n_queries == 5
    assert Qrel.objects.filter(benchmark=bench, side="og", grade__gt=0).count() > \
        Qrel.objects.filter(benchmark=bench, side="changed", grade__gt=0).count() > 0
    q = BenchmarkQuery.objects.get(benchmark=bench, qid=qids[0])
    assert q.changed_instruction.endswith("are not relevant.") and q.instruction


@pytest.mark.django_db
def test_litsearch_local(tmp_path):
    root = tmp_path / "litsearch"
    root.mkdir()
    (root / "query.jsonl").write_text(json.dumps({"query": "papers on sparse retrieval", "corpusids": [11, 12]}) + "\n"
                                      + json.dumps({"query": "dense passage retrieval", "corpusids": [13]}) + "\n")
    (root / "corpus_clean.jsonl").write_text("".join(json.dumps({"corpusid": i, "title": f"T{i}", "abstract": f"A{i}"}) + "\n"
                                                     for i in (11, 12, 13, 14)))
    bench = services.benchmark_import_path(format="litsearch", path=root, name="litsearch")[0]
    assert (bench.primary_metric, bench.n_queries, bench.n_documents, bench.n_qrels) == ("recall_5", 2, 4, 3)
    (root / "query.jsonl").write_text(json.dumps({"query": "x", "corpusids": [99]}) + "\n")
    with pytest.raises(BenchmarkFormatError, match="unknown document id '99'"):
        services.benchmark_import_path(format="litsearch", path=root, name="litsearch-2")
