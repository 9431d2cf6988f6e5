"""Benchmark file formats, parsed into one in-memory shape (no database here: services write).

Formats: BEIR (corpus.jsonl[.gz], queries.jsonl, qrels/*.tsv), TREC (topics, qrels, optional run and corpus),
BRIGHT (local anserini-tools files or the HF hub `xlangai/BRIGHT`), FollowIR-style paired qrels
(original vs changed instruction) and LitSearch. Every error names the file, the line and the field,
and is raised before anything is written, so an import is all-or-nothing.
"""
from __future__ import annotations

import gzip
import io
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

BRIGHT_TASKS = (
    "biology", "earth_science", "economics", "psychology", "robotics", "stackoverflow",
    "sustainable_living", "leetcode", "pony", "aops", "theoremqa_questions", "theoremqa_theorems",
)
# anserini-tools spells the tasks with hyphens (topics.bright-earth-science.tsv.gz).
_BRIGHT_FILE_NAME = {t: t.replace("_", "-") for t in BRIGHT_TASKS}


class BenchmarkFormatError(ValueError):
    """A bad input file: says which file, which line and which field."""

    def __init__(self, message: str, *, file: str | Path = "", line: int | None = None, field: str = ""):
        self.file, self.line, self.field, self.message = str(file), line, field, message
        where = [p for p in (Path(str(file)).name if file else "", f"line {line}" if line else "", f"field '{field}'" if field else "") if p]
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass
class QueryRecord:
    text: str
    instruction: str = ""
    changed_instruction: str = ""
    excluded_ids: list[str] = field(default_factory=list)


@dataclass
class ParsedBenchmark:
    name: str
    format: str
    queries: dict[str, QueryRecord] = field(default_factory=dict)
    documents: dict[str, tuple[str, str]] = field(default_factory=dict)  # docid -> (title, text)
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=lambda: {"og": {}})  # side -> qid -> docid -> grade
    runs: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # uploaded first-stage runs
    group: str = ""
    task: str = ""
    primary_metric: str = "ndcg_cut_10"
    description: str = ""
    source: str = ""

    def validate(self, *, qrels_file: str = "qrels", run_files: dict[str, str] | None = None) -> None:
        """Unknown ids are errors: every judged or retrieved query must exist, and every judged document
        too when the benchmark ships its documents."""
        if not self.queries:
            raise BenchmarkFormatError("no queries", file=self.name)
        for side, by_q in self.qrels.items():
            for qid, docs in by_q.items():
                if qid not in self.queries:
                    raise BenchmarkFormatError(f"unknown query id {qid!r} ({side} qrels)", file=qrels_file, field="query-id")
                if self.documents:
                    for docid in docs:
                        if docid not in self.documents:
                            raise BenchmarkFormatError(f"unknown document id {docid!r} for query {qid!r} ({side} qrels)",
                                                       file=qrels_file, field="corpus-id")
        if not any(self.qrels.get("og", {}).values()):
            raise BenchmarkFormatError("no relevance judgments", file=qrels_file)
        for name, run in self.runs.items():
            fname = (run_files or {}).get(name, name)
            for qid, docs in run.items():
                if qid not in self.queries:
                    raise BenchmarkFormatError(f"unknown query id {qid!r} in run {name!r}", file=fname, field="qid")
                if self.documents:
                    for docid in docs:
                        if docid not in self.documents:
                            raise BenchmarkFormatError(f"unknown document id {docid!r} in run {name!r}", file=fname, field="docid")


# ---------------------------------------------------------------- reading helpers

def open_text(path: str | Path) -> io.TextIOBase:
    path = Path(path)
    if not path.exists():
        raise BenchmarkFormatError("file not found", file=path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    with open_text(path) as fh:
        try:
            for n, line in enumerate(fh, 1):
                line = line.rstrip("\n").rstrip("\r")
                if line.strip():
                    yield n, line
        except (UnicodeDecodeError, EOFError, OSError) as exc:
            raise BenchmarkFormatError(f"cannot read: {exc}", file=path) from exc


def _jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    for n, line in _lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BenchmarkFormatError(f"invalid JSON ({exc.msg})", file=path, line=n) from exc
        if not isinstance(obj, dict):
            raise BenchmarkFormatError("expected a JSON object", file=path, line=n)
        yield n, obj


def _required(obj: dict, key: str, *, path, line, alt: Iterable[str] = ()) -> str:
    for k in (key, *alt):
        if k in obj and obj[k] is not None:
            return str(obj[k])
    raise BenchmarkFormatError("missing", file=path, line=line, field=key)


def _int(value: str, *, path, line, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            raise BenchmarkFormatError(f"not an integer: {value!r}", file=path, line=line, field=field) from None
        if f != int(f):
            raise BenchmarkFormatError(f"not an integer: {value!r}", file=path, line=line, field=field)
        return int(f)


def _find(directory: Path, *names: str) -> Path | None:
    for name in names:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.exists():
                return candidate
    return None


# ---------------------------------------------------------------- qrels, runs, topics, corpora

def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """TREC qrels (`qid iter docid grade`) or BEIR tsv (`query-id corpus-id score`, header optional)."""
    qrels: dict[str, dict[str, int]] = {}
    width = None
    first = True
    for n, line in _lines(path):
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts]
        if first:
            first = False
            if not _is_number(parts[-1]):
                if len(parts) == 3 and parts[0] in ("query-id", "query_id", "qid"):
                    width = 3  # the BEIR header
                    continue
                raise BenchmarkFormatError(f"unexpected header {line!r}", file=path, line=n)
        if width is None:
            width = len(parts)
            if width not in (3, 4):
                raise BenchmarkFormatError(f"expected 3 (BEIR) or 4 (TREC) fields, got {len(parts)}", file=path, line=n)
        if len(parts) != width:
            raise BenchmarkFormatError(f"ragged line: expected {width} fields, got {len(parts)}", file=path, line=n)
        qid, docid, grade = (parts[0], parts[1], parts[2]) if width == 3 else (parts[0], parts[2], parts[3])
        if not qid:
            raise BenchmarkFormatError("empty", file=path, line=n, field="query-id")
        if not docid:
            raise BenchmarkFormatError("empty", file=path, line=n, field="corpus-id")
        qrels.setdefault(qid, {})[docid] = _int(grade, path=path, line=n, field="score" if width == 3 else "relevance")
    return qrels


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_run(path: str | Path) -> dict[str, dict[str, float]]:
    """A first-stage or reranked run, `run[qid][docid] = score`, from either format the field publishes:
    a TREC run file or a `score.json`. The content decides (a JSON object starts with `{`), not the file
    name, so an upload saved under a generic name is still read right."""
    return read_run_score_json(path) if _looks_like_json(path) else read_run_trec(path)


def _looks_like_json(path: str | Path) -> bool:
    with open_text(path) as fh:
        try:
            head = fh.read(4096)
        except (UnicodeDecodeError, EOFError, OSError) as exc:
            raise BenchmarkFormatError(f"cannot read: {exc}", file=path) from exc
    return head.lstrip("\ufeff \t\r\n")[:1] == "{"


def read_run_trec(path: str | Path) -> dict[str, dict[str, float]]:
    """A TREC run: `qid Q0 docid rank score tag` (the rank column is ignored, as trec_eval does)."""
    run: dict[str, dict[str, float]] = {}
    for n, line in _lines(path):
        parts = line.split()
        if len(parts) != 6:
            raise BenchmarkFormatError(f"ragged line: expected 6 fields (qid Q0 docid rank score tag), got {len(parts)}",
                                       file=path, line=n)
        qid, _, docid, rank, score, _tag = parts
        _int(rank, path=path, line=n, field="rank")
        run.setdefault(qid, {})[docid] = _score(score, path=path, line=n)
    return run


def _score(value, *, path, line: int | None, field: str = "score") -> float:
    if isinstance(value, bool):
        raise BenchmarkFormatError(f"not a number: {value!r}", file=path, line=line, field=field)
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise BenchmarkFormatError(f"not a number: {value!r}", file=path, line=line, field=field) from None
    if not math.isfinite(score):
        raise BenchmarkFormatError(f"not a finite number: {value!r}", file=path, line=line, field=field)
    return score


def read_run_score_json(path: str | Path) -> dict[str, dict[str, float]]:
    """`score.json` as Rank1 and LimRank publish their first stages (e.g. BM25 on GPT-4 reasoning queries for
    BRIGHT): one JSON object `{qid: {docid: score}}`. Same checks as the authors' `validate_json`
    (string keys, an object per query, numeric scores); an integer score is accepted as a number."""
    with open_text(path) as fh:
        try:
            text = fh.read()
        except (UnicodeDecodeError, EOFError, OSError) as exc:
            raise BenchmarkFormatError(f"cannot read: {exc}", file=path) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchmarkFormatError(f"invalid JSON ({exc.msg}, column {exc.colno})", file=path, line=exc.lineno) from exc
    if not isinstance(data, dict):
        raise BenchmarkFormatError("expected a JSON object {qid: {docid: score}}", file=path)
    run: dict[str, dict[str, float]] = {}
    for qid, docs in data.items():
        if not isinstance(docs, dict):
            raise BenchmarkFormatError(f"query {qid!r}: expected an object {{docid: score}}, got {type(docs).__name__}",
                                       file=path, field=str(qid))
        run[str(qid)] = {str(docid): _score(score, path=path, line=None, field=f"{qid}/{docid}")
                         for docid, score in docs.items()}
    return run


def write_run(run: Mapping[str, Mapping[str, float]], path: str | Path, *, tag: str) -> Path:
    """Write a run as `score.json` when the path ends in `.json`, as a TREC run otherwise. Written to a
    temporary file then renamed, so a reader never sees half a run."""
    from .metrics import run_format, run_format_score_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        if path.suffix.lower() == ".json":
            fh.write(run_format_score_json(run))
        else:
            fh.writelines(run_format(run, tag=tag))
    tmp.replace(path)
    return path


_TAG = re.compile(r"<(num|title|desc|narr)>(.*?)(?=<(?:num|title|desc|narr|/top)>)", re.S | re.I)


def read_topics(path: str | Path, *, field_name: str = "title") -> dict[str, QueryRecord]:
    """TREC topics: SGML (`<top><num><title><desc><narr></top>`, the narrative kept as instruction)
    or tab-separated `qid<TAB>query`."""
    with open_text(path) as fh:
        try:
            content = fh.read()
        except (UnicodeDecodeError, EOFError, OSError) as exc:
            raise BenchmarkFormatError(f"cannot read: {exc}", file=path) from exc
    topics: dict[str, QueryRecord] = {}
    if "<top>" in content.lower():
        for block_no, block in enumerate(re.findall(r"<top>(.*?)</top>", content, re.S | re.I), 1):
            parts = {}
            for tag, value in _TAG.findall(block + "</top>"):
                value = re.sub(r"^\s*(Number:|Description:|Narrative:)", "", value.strip(), flags=re.I)
                parts[tag.lower()] = " ".join(value.split())
            line = content[: content.find(block)].count("\n") + 1
            if not parts.get("num"):
                raise BenchmarkFormatError(f"topic {block_no} has no <num>", file=path, line=line, field="num")
            text = parts.get(field_name) or parts.get("title") or parts.get("desc")
            if not text:
                raise BenchmarkFormatError(f"topic {parts['num']} has no <{field_name}>", file=path, line=line, field=field_name)
            topics[parts["num"]] = QueryRecord(text=text, instruction=parts.get("narr", ""))
        return topics
    for n, line in _lines(path):
        parts = line.split("\t")
        if len(parts) != 2:
            raise BenchmarkFormatError(f"ragged line: expected 2 tab-separated fields (qid, query), got {len(parts)}",
                                       file=path, line=n)
        qid, text = parts[0].strip(), parts[1].strip()
        if not qid:
            raise BenchmarkFormatError("empty", file=path, line=n, field="qid")
        if not text:
            raise BenchmarkFormatError("empty", file=path, line=n, field="query")
        topics[qid] = QueryRecord(text=text)
    return topics


def read_corpus(path: str | Path) -> dict[str, tuple[str, str]]:
    """BEIR corpus.jsonl (`_id`, `title`, `text`) or tsv (`docid<TAB>text` / `docid<TAB>title<TAB>text`)."""
    name = Path(path).name
    docs: dict[str, tuple[str, str]] = {}
    if ".jsonl" in name or ".json" in name:
        for n, obj in _jsonl(path):
            docid = _required(obj, "_id", path=path, line=n, alt=("id", "docid", "corpusid"))
            text = _required(obj, "text", path=path, line=n, alt=("content", "contents", "abstract"))
            docs[docid] = (str(obj.get("title") or ""), text)
        return docs
    for n, line in _lines(path):
        parts = line.split("\t")
        if len(parts) == 2:
            docs[parts[0]] = ("", parts[1])
        elif len(parts) == 3:
            docs[parts[0]] = (parts[1], parts[2])
        else:
            raise BenchmarkFormatError(f"ragged line: expected 2 or 3 tab-separated fields, got {len(parts)}", file=path, line=n)
    return docs


# ---------------------------------------------------------------- formats

def parse_beir(path: str | Path, *, name: str, split: str = "test") -> ParsedBenchmark:
    """A BEIR folder. Only queries judged in the split are kept (BEIR's GenericDataLoader does the same)."""
    root = Path(path)
    if not root.is_dir():
        raise BenchmarkFormatError("not a folder (expected corpus.jsonl, queries.jsonl, qrels/)", file=root)
    corpus_path = _find(root, "corpus.jsonl")
    queries_path = _find(root, "queries.jsonl")
    qrels_path = _find(root / "qrels", f"{split}.tsv")
    for label, p in (("corpus.jsonl", corpus_path), ("queries.jsonl", queries_path), (f"qrels/{split}.tsv", qrels_path)):
        if p is None:
            raise BenchmarkFormatError("missing", file=root / label)
    documents = read_corpus(corpus_path)
    queries: dict[str, QueryRecord] = {}
    for n, obj in _jsonl(queries_path):
        qid = _required(obj, "_id", path=queries_path, line=n, alt=("id",))
        queries[qid] = QueryRecord(text=_required(obj, "text", path=queries_path, line=n),
                                   instruction=str(obj.get("instruction") or ""))
    qrels = read_qrels(qrels_path)
    parsed = ParsedBenchmark(name=name, format="beir", queries=queries, documents=documents, qrels={"og": qrels},
                             source=str(root))
    parsed.validate(qrels_file=str(qrels_path))
    parsed.queries = {qid: q for qid, q in queries.items() if qid in qrels}
    return parsed


def parse_trec(*, name: str, topics: str | Path, qrels: str | Path, run: str | Path | None = None,
               corpus: str | Path | None = None, run_name: str = "", topic_field: str = "title") -> ParsedBenchmark:
    parsed = ParsedBenchmark(name=name, format="trec", queries=read_topics(topics, field_name=topic_field),
                             qrels={"og": read_qrels(qrels)}, source=Path(str(topics)).name)
    if corpus:
        parsed.documents = read_corpus(corpus)
    run_files = {}
    if run:
        rn = run_name or Path(str(run)).name.split(".")[0]
        parsed.runs[rn] = read_run(run)
        run_files[rn] = str(run)
    parsed.validate(qrels_file=str(qrels), run_files=run_files)
    return parsed


def parse_followir(path: str | Path, *, name: str) -> ParsedBenchmark:
    """A FollowIR-style folder: queries.jsonl with `instruction_og` and `instruction_changed`,
    qrels/og.(tsv|txt) and qrels/changed.(tsv|txt), optional corpus.jsonl and top_ranked run
    (the candidates both instructions rerank)."""
    root = Path(path)
    queries_path = _find(root, "queries.jsonl")
    og = _find(root / "qrels", "og.tsv", "og.txt")
    changed = _find(root / "qrels", "changed.tsv", "changed.txt")
    for label, p in (("queries.jsonl", queries_path), ("qrels/og.tsv", og), ("qrels/changed.tsv", changed)):
        if p is None:
            raise BenchmarkFormatError("missing", file=root / label)
    queries = {}
    for n, obj in _jsonl(queries_path):
        qid = _required(obj, "_id", path=queries_path, line=n, alt=("id", "qid"))
        queries[qid] = QueryRecord(
            text=_required(obj, "text", path=queries_path, line=n, alt=("query",)),
            instruction=_required(obj, "instruction_og", path=queries_path, line=n),
            changed_instruction=_required(obj, "instruction_changed", path=queries_path, line=n),
        )
    parsed = ParsedBenchmark(name=name, format="followir", queries=queries,
                             qrels={"og": read_qrels(og), "changed": read_qrels(changed)},
                             primary_metric="p_mrr", source=str(root))
    corpus = _find(root, "corpus.jsonl")
    if corpus:
        parsed.documents = read_corpus(corpus)
    run_files = {}
    top = _find(root, "top_ranked.trec", "top_ranked.txt")
    if top:
        parsed.runs["top_ranked"] = read_run(top)
        run_files["top_ranked"] = str(top)
    parsed.validate(qrels_file=str(og), run_files=run_files)
    return parsed


def parse_litsearch(path: str | Path | None = None, *, name: str = "litsearch") -> ParsedBenchmark:
    """LitSearch (princeton-nlp/LitSearch): queries with their `corpusids`, and `corpus_clean`.
    A local folder holds query.jsonl and corpus_clean.jsonl[.gz]; without a folder, the hub (online)."""
    if path:
        root = Path(path)
        qpath, cpath = _find(root, "query.jsonl"), _find(root, "corpus_clean.jsonl")
        if qpath is None or cpath is None:
            raise BenchmarkFormatError("missing query.jsonl or corpus_clean.jsonl", file=root)
        rows = [(n, obj) for n, obj in _jsonl(qpath)]
        docs = {}
        for n, obj in _jsonl(cpath):
            docs[_required(obj, "corpusid", path=cpath, line=n)] = (
                str(obj.get("title") or ""), _required(obj, "abstract", path=cpath, line=n))
        source = str(root)
    else:
        from datasets import load_dataset

        rows = list(enumerate(load_dataset("princeton-nlp/LitSearch", "query", split="full"), 1))
        docs = {str(r["corpusid"]): (r.get("title") or "", r.get("abstract") or "")
                for r in load_dataset("princeton-nlp/LitSearch", "corpus_clean", split="full")}
        qpath, source = "hub:princeton-nlp/LitSearch", "https://huggingface.co/datasets/princeton-nlp/LitSearch"
    queries, qrels = {}, {}
    for n, obj in rows:
        qid = str(obj.get("_id") or obj.get("id") or n - 1)
        queries[qid] = QueryRecord(text=_required(obj, "query", path=qpath, line=n))
        ids = obj.get("corpusids")
        if not isinstance(ids, list) or not ids:
            raise BenchmarkFormatError("expected a non-empty list", file=qpath, line=n, field="corpusids")
        qrels[qid] = {str(d): 1 for d in ids}
    parsed = ParsedBenchmark(name=name, format="litsearch", queries=queries, documents=docs, qrels={"og": qrels},
                             primary_metric="recall_5", source=source)
    parsed.validate(qrels_file=str(qpath))
    return parsed


def parse_bright_local(path: str | Path, *, name: str = "BRIGHT", tasks: Iterable[str] = BRIGHT_TASKS) -> list[ParsedBenchmark]:
    """BRIGHT from local files (anserini-tools layout): topics/topics.bright-<task>.tsv.gz,
    qrels/qrels.bright-<task>.txt, qrels/exclude.bright-<task>.txt (`qid docid`, optional) and, optional,
    documents/<task>.jsonl[.gz] (`id`, `content`). Without documents a task is scored from an uploaded run."""
    root = Path(path)
    out = []
    for task in tasks:
        if task not in BRIGHT_TASKS:
            raise BenchmarkFormatError(f"unknown BRIGHT task {task!r}", file=root)
        fname = _BRIGHT_FILE_NAME[task]
        topics = _find(root / "topics", f"topics.bright-{fname}.tsv")
        qrels_path = _find(root / "qrels", f"qrels.bright-{fname}.txt")
        if topics is None or qrels_path is None:
            raise BenchmarkFormatError(f"missing topics or qrels for task {task}", file=root)
        parsed = ParsedBenchmark(name=f"{name}/{task}", format="bright", group=name, task=task,
                                 queries=read_topics(topics), qrels={"og": read_qrels(qrels_path)},
                                 source="BRIGHT (xlang-ai, CC BY 4.0) via castorini/anserini-tools")
        exclude = _find(root / "qrels", f"exclude.bright-{fname}.txt")
        if exclude:
            for n, line in _lines(exclude):
                parts = line.split()
                if len(parts) != 2:
                    raise BenchmarkFormatError(f"ragged line: expected 2 fields (qid docid), got {len(parts)}", file=exclude, line=n)
                if parts[0] not in parsed.queries:
                    raise BenchmarkFormatError(f"unknown query id {parts[0]!r}", file=exclude, line=n, field="qid")
                parsed.queries[parts[0]].excluded_ids.append(parts[1])
        docs = _find(root / "documents", f"{task}.jsonl", f"{fname}.jsonl")
        if docs:
            parsed.documents = read_corpus(docs)
        parsed.validate(qrels_file=str(qrels_path))
        out.append(parsed)
    return out


def parse_bright_hub(*, name: str = "BRIGHT", tasks: Iterable[str] = BRIGHT_TASKS, long_documents: bool = False) -> list[ParsedBenchmark]:
    """BRIGHT from the HF hub (needs network): `examples` (query, gold_ids, excluded_ids) and `documents`."""
    from datasets import load_dataset

    examples = load_dataset("xlangai/BRIGHT", "examples")
    documents = load_dataset("xlangai/BRIGHT", "long_documents" if long_documents else "documents")
    out = []
    for task in tasks:
        parsed = ParsedBenchmark(name=f"{name}/{task}", format="bright", group=name, task=task,
                                 source="https://huggingface.co/datasets/xlangai/BRIGHT (CC BY 4.0)")
        for row in examples[task]:
            qid = str(row["id"])
            excluded = [d for d in (row.get("excluded_ids") or []) if d and d != "N/A"]
            parsed.queries[qid] = QueryRecord(text=row["query"], excluded_ids=excluded)
            gold = row["gold_ids_long"] if long_documents else row["gold_ids"]
            parsed.qrels["og"][qid] = {str(d): 1 for d in gold}
        parsed.documents = {str(r["id"]): ("", r["content"]) for r in documents[task]}
        parsed.validate(qrels_file=f"hub:xlangai/BRIGHT/{task}")
        out.append(parsed)
    return out
