"""Benchmark file formats, parsed into one in-memory shape (no database here: services write).

Formats: BEIR (corpus.jsonl[.gz], queries.jsonl, qrels/*.tsv), TREC (topics, qrels, optional run and corpus),
BRIGHT (local anserini-tools files or the HF hub `xlangai/BRIGHT`), FollowIR-style paired qrels
(original vs changed instruction) and LitSearch. Every error names the file, the line and the field,
and is raised before anything is written, so an import is all-or-nothing.
"""
from __future__ import annotations

import gzip
import html
import io
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from .metrics import run_format, run_format_score_json

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
        # A file is named by its base name; a hub or ir_datasets source ("hub:org/name") in full.
        label = (str(file) if ":" in str(file) else Path(str(file)).name) if file else ""
        where = [p for p in (label, f"line {line}" if line else "", f"field '{field}'" if field else "") if p]
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
    """TREC qrels (`qid iter docid grade`), BEIR tsv (`query-id corpus-id score`, header optional) or the hub's
    JSON lines (`{"query-id", "corpus-id", "score"}`, as FollowIR's qrels_og/test.jsonl)."""
    if ".jsonl" in Path(str(path)).name or _starts_with(path, "{"):
        return _read_qrels_jsonl(path)
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


def _read_qrels_jsonl(path: str | Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for n, obj in _jsonl(path):
        qid = _required(obj, "query-id", path=path, line=n)
        docid = _required(obj, "corpus-id", path=path, line=n)
        qrels.setdefault(qid, {})[docid] = _int(_required(obj, "score", path=path, line=n), path=path, line=n, field="score")
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


def run_name_from_path(path: str | Path) -> str:
    """A run's name from its file: the stem, or the folder's name for a file called `score.json`
    (the authors publish one `<task>_bm25_long_False/score.json` per task)."""
    p = Path(path)
    stem = p.name.split(".")[0]
    name = p.parent.name if stem in ("score", "scores", "run") and p.parent.name else stem
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64] or "run"


def write_run(run: Mapping[str, Mapping[str, float]], path: str | Path, *, tag: str) -> Path:
    """Write a run as `score.json` when the path ends in `.json`, as a TREC run otherwise. Written to a
    temporary file then renamed, so a reader never sees half a run."""
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
    """BEIR corpus.jsonl (`_id`, `title`, `text`), tsv (`docid<TAB>text` / `docid<TAB>title<TAB>text`), or TREC
    SGML documents as the classic collections ship them (`<DOC><DOCNO>...</DOCNO>...</DOC>`, possibly gzipped;
    a folder of such files is read whole)."""
    if Path(str(path)).is_dir():
        return read_trec_sgml(path)
    name = Path(path).name
    if _starts_with(path, "<DOC"):
        return read_trec_sgml(path)
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


def _starts_with(path: str | Path, prefix: str) -> bool:
    with open_text(path) as fh:
        try:
            head = fh.read(4096)
        except (UnicodeDecodeError, EOFError, OSError) as exc:
            raise BenchmarkFormatError(f"cannot read: {exc}", file=path) from exc
    return head.lstrip("\ufeff \t\r\n")[: len(prefix)].upper() == prefix.upper()


# TREC document fields: the title is the first of these present (FT and LA Times: HEADLINE; FBIS: TI; AP/WSJ:
# HEAD/HL), the text is every TEXT block. Other fields (DATE, BYLINE, PROFILE, ...) are left out, as the usual
# TREC indexers (Anserini's TrecCollection) leave them out of the indexed text.
_TREC_TITLE_TAGS = ("HEADLINE", "TITLE", "HEAD", "HL", "TI", "H3")
_SGML_TAG = re.compile(r"<[^>]+>")


def _sgml_field(block: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}(?:\s[^>]*)?>(.*?)</{tag}>", block, re.S | re.I)


def _sgml_text(value: str) -> str:
    return " ".join(html.unescape(_SGML_TAG.sub(" ", value)).split())


def read_trec_sgml(path: str | Path) -> dict[str, tuple[str, str]]:
    """TREC SGML documents: `<DOC>` blocks with a `<DOCNO>`, a title from HEADLINE/TITLE/HEAD/HL/TI and the text
    of the TEXT blocks (tags stripped, entities decoded). A folder: every file in it, sorted, recursively.
    Errors name the file and the line of the `<DOC>` at fault."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")) if root.is_dir() else [root]
    docs: dict[str, tuple[str, str]] = {}
    for f in files:
        if f.suffix.upper() == ".Z":
            raise BenchmarkFormatError("compress(1) .Z files are not read: decompress them (uncompress / gzip -d) first",
                                       file=f)
        block: list[str] | None = None
        start = 0
        with open_text(f) as fh:
            try:
                for n, line in enumerate(fh, 1):
                    stripped = line.strip().upper()
                    if stripped.startswith("<DOC>"):
                        if block is not None:
                            raise BenchmarkFormatError("<DOC> inside another <DOC> (missing </DOC>)", file=f, line=n)
                        block, start = [], n
                    if block is not None:
                        block.append(line)
                        if stripped.endswith("</DOC>"):
                            text = "".join(block)
                            docno = _sgml_field(text, "DOCNO")
                            if not docno or not docno[0].strip():
                                raise BenchmarkFormatError("<DOC> without a <DOCNO>", file=f, line=start, field="DOCNO")
                            title = next((_sgml_text(" ".join(v)) for t in _TREC_TITLE_TAGS if (v := _sgml_field(text, t))), "")
                            body = _sgml_text(" ".join(_sgml_field(text, "TEXT")))
                            docs[docno[0].strip()] = (title, body)
                            block = None
                    elif stripped:
                        raise BenchmarkFormatError(f"text outside a <DOC> block: {line.strip()[:40]!r}", file=f, line=n)
            except (UnicodeDecodeError, EOFError, OSError) as exc:
                raise BenchmarkFormatError(f"cannot read: {exc}", file=f) from exc
        if block is not None:
            raise BenchmarkFormatError("<DOC> not closed by </DOC>", file=f, line=start)
    if not docs:
        raise BenchmarkFormatError("no <DOC> found", file=path)
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


FOLLOWIR_HUB = {"core17": "jhu-clsp/core17-instructions", "robust04": "jhu-clsp/robust04-instructions",
                "news21": "jhu-clsp/news21-instructions"}


def parse_followir(path: str | Path, *, name: str, split: str = "test") -> ParsedBenchmark:
    """FollowIR. The public layout (the hub's `jhu-clsp/<core17|robust04|news21>-instructions`, read by mteb's
    instruction-retrieval loader): corpus.jsonl (`_id`, `title`, `text`), queries.jsonl (`_id`, `text`,
    `instruction_og`, `instruction_changed`), qrels_og/<split>.jsonl|tsv and qrels_changed/<split>.jsonl|tsv
    (`query-id`, `corpus-id`, `score`), top_ranked.jsonl (`qid`, `pid`: the candidates both instructions rerank).
    Also the studio's older upload layout: qrels/og.tsv, qrels/changed.tsv, top_ranked.trec."""
    root = Path(path)
    if not root.is_dir():
        raise BenchmarkFormatError("not a folder (expected corpus.jsonl, queries.jsonl, qrels_og/, qrels_changed/, "
                                   "top_ranked.jsonl)", file=root)
    if (root / "qrels_og").is_dir():
        return _parse_followir_public(root, name=name, split=split)
    queries_path = _find(root, "queries.jsonl")
    og = _find(root / "qrels", "og.tsv", "og.txt")
    changed = _find(root / "qrels", "changed.tsv", "changed.txt")
    for label, p in (("queries.jsonl", queries_path), ("qrels/og.tsv", og), ("qrels/changed.tsv", changed)):
        if p is None:
            raise BenchmarkFormatError("missing", file=root / label)
    queries = {}
    for n, obj in _jsonl(queries_path):
        qid = _required(obj, "_id", path=queries_path, line=n, alt=("id", "qid"))
        queries[qid] = _followir_query(obj, path=queries_path, line=n)
    parsed = ParsedBenchmark(name=name, format="followir", queries=queries,
                             qrels={"og": read_qrels(og), "changed": read_qrels(changed)},
                             primary_metric="p_mrr", source=str(root))
    corpus = _find(root, "corpus.jsonl")
    if corpus:
        parsed.documents = read_corpus(corpus)
    run_files = {}
    top = _find(root, "top_ranked.trec", "top_ranked.txt", "top_ranked.jsonl")
    if top:
        parsed.runs["top_ranked"] = (_followir_top_ranked(_jsonl(top), path=top) if ".jsonl" in top.name
                                     else read_run(top))
        run_files["top_ranked"] = str(top)
    return _followir_finish(parsed, qrels_file=str(og), run_files=run_files)


def _followir_query(obj: dict, *, path, line) -> QueryRecord:
    return QueryRecord(text=_required(obj, "text", path=path, line=line, alt=("query",)),
                       instruction=_required(obj, "instruction_og", path=path, line=line),
                       changed_instruction=_required(obj, "instruction_changed", path=path, line=line))


def _followir_top_ranked(rows: Iterable[tuple[int, dict]], *, path) -> dict[str, dict[str, float]]:
    """top_ranked rows (`qid`, `pid`: one document, or a list) as a run. The file has no scores: the order it
    lists a query's documents in is kept as the ranking (first listed = highest score), which only matters when
    an eval run reranks fewer than all of them."""
    order: dict[str, list[str]] = {}
    for n, obj in rows:
        qid = _required(obj, "qid", path=path, line=n)
        pids = obj.get("pid")
        if pids is None:
            raise BenchmarkFormatError("missing", file=path, line=n, field="pid")
        for pid in (pids if isinstance(pids, list) else [pids]):
            docs = order.setdefault(qid, [])
            if str(pid) not in docs:
                docs.append(str(pid))
    return {qid: {d: float(len(docs) - i) for i, d in enumerate(docs)} for qid, docs in order.items()}


def _followir_finish(parsed: ParsedBenchmark, *, qrels_file: str, run_files: dict[str, str]) -> ParsedBenchmark:
    # mteb keeps the queries that have original-instruction judgments; so do we.
    parsed.queries = {qid: q for qid, q in parsed.queries.items() if qid in parsed.qrels["og"]}
    for run in parsed.runs.values():
        for qid in [q for q in run if q not in parsed.queries]:
            del run[qid]
    parsed.validate(qrels_file=qrels_file, run_files=run_files)
    return parsed


def _parse_followir_public(root: Path, *, name: str, split: str) -> ParsedBenchmark:
    queries_path = _find(root, "queries.jsonl")
    og = _find(root / "qrels_og", f"{split}.jsonl", f"{split}.tsv")
    changed = _find(root / "qrels_changed", f"{split}.jsonl", f"{split}.tsv")
    for label, p in (("queries.jsonl", queries_path), (f"qrels_og/{split}.jsonl", og), (f"qrels_changed/{split}.jsonl", changed)):
        if p is None:
            raise BenchmarkFormatError("missing", file=root / label)
    queries = {}
    for n, obj in _jsonl(queries_path):
        queries[_required(obj, "_id", path=queries_path, line=n)] = _followir_query(obj, path=queries_path, line=n)
    parsed = ParsedBenchmark(name=name, format="followir", queries=queries,
                             qrels={"og": read_qrels(og), "changed": read_qrels(changed)},
                             primary_metric="p_mrr", source=str(root))
    corpus = _find(root, "corpus.jsonl")
    if corpus:
        parsed.documents = read_corpus(corpus)
    run_files = {}
    top = _find(root, "top_ranked.jsonl")
    if top:
        parsed.runs["top_ranked"] = _followir_top_ranked(_jsonl(top), path=top)
        run_files["top_ranked"] = str(top)
    return _followir_finish(parsed, qrels_file=str(og), run_files=run_files)


def parse_followir_hub(repo: str, *, name: str, split: str = "test") -> ParsedBenchmark:
    """FollowIR from the HF hub (needs network; `datasets` imported here only): the configs corpus, queries,
    qrels_og, qrels_changed and top_ranked of e.g. `jhu-clsp/core17-instructions` (or a short name: core17,
    robust04, news21)."""
    from datasets import load_dataset

    repo = FOLLOWIR_HUB.get(repo.lower(), repo)
    where = f"hub:{repo}"

    def rows(config: str):
        try:
            ds = load_dataset(repo, config)
        except Exception as exc:  # noqa: BLE001 - offline, unknown repo or config: say which, write nothing
            raise BenchmarkFormatError(f"cannot load config {config!r} ({type(exc).__name__}: {exc})", file=where) from None
        return enumerate(next(iter(ds.values())) if config in ("corpus", "queries", "top_ranked") else ds[split], 1)

    queries = {str(obj["_id"]): _followir_query(obj, path=f"{where}/queries", line=n) for n, obj in rows("queries")}
    qrels = {}
    for side in ("og", "changed"):
        qrels[side] = {}
        for n, obj in rows(f"qrels_{side}"):
            qrels[side].setdefault(str(obj["query-id"]), {})[str(obj["corpus-id"])] = _int(
                str(obj["score"]), path=f"{where}/qrels_{side}", line=n, field="score")
    parsed = ParsedBenchmark(name=name, format="followir", queries=queries, qrels=qrels, primary_metric="p_mrr",
                             source=f"https://huggingface.co/datasets/{repo}")
    parsed.documents = {str(r["_id"]): (str(r.get("title") or ""), str(r["text"])) for _, r in rows("corpus")}
    parsed.runs["top_ranked"] = _followir_top_ranked(rows("top_ranked"), path=f"{where}/top_ranked")
    return _followir_finish(parsed, qrels_file=f"{where}/qrels_og", run_files={"top_ranked": f"{where}/top_ranked"})


def parse_ir_datasets(dataset_id: str, *, name: str) -> ParsedBenchmark:
    """A collection by its `ir_datasets` id (e.g. `disks45/nocr/trec-robust-2004`), read through the ir_datasets
    package when it is installed and the data is already on this machine (ir_datasets' own store). Documents
    map to (title, text) from the fields the collection has (`title`/`headline`, `text`/`body`)."""
    try:
        import ir_datasets
    except ImportError:
        raise BenchmarkFormatError("ir_datasets is not installed: pip install ir_datasets, put the collection "
                                   "where ir_datasets expects it, then import again (or import the files with "
                                   "--format trec)", file=f"ir_datasets:{dataset_id}") from None
    where = f"ir_datasets:{dataset_id}"
    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError:
        raise BenchmarkFormatError("unknown ir_datasets id", file=where) from None

    def field_of(obj, *names) -> str:
        for n in names:
            value = getattr(obj, n, None)
            if value:
                return str(value)
        return ""

    try:
        queries = {str(q.query_id): QueryRecord(text=field_of(q, "title", "text", "query"),
                                                instruction=field_of(q, "narrative"))
                   for q in ds.queries_iter()} if ds.has_queries() else {}
        qrels: dict[str, dict[str, int]] = {}
        if ds.has_qrels():
            for r in ds.qrels_iter():
                qrels.setdefault(str(r.query_id), {})[str(r.doc_id)] = int(r.relevance)
        documents = {str(d.doc_id): (field_of(d, "title", "headline"), field_of(d, "text", "body", "abstract"))
                     for d in ds.docs_iter()} if ds.has_docs() else {}
    except Exception as exc:  # noqa: BLE001 - a missing source file or a refused download: say which, write nothing
        raise BenchmarkFormatError(f"data not available locally ({type(exc).__name__}: {exc}); ir_datasets "
                                   f"documents where each collection's files go", file=where) from None
    parsed = ParsedBenchmark(name=name, format="trec", queries=queries, documents=documents, qrels={"og": qrels},
                             source=where)
    parsed.validate(qrels_file=where)
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
