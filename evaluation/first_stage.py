"""First stage: BM25 with bm25s (English stopwords, Snowball stemmer), cached per benchmark on disk.

The index and each retrieved run live under ARTIFACTS_DIR/bm25/benchmark-<id>/, keyed by a fingerprint of the
corpus and of the queries, so a second eval run on the same benchmark reuses both.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Callable, Mapping

BM25_PARAMS = {"k1": 0.9, "b": 0.4, "method": "lucene", "stopwords": "en", "stemmer": "english"}


def _fingerprint(items) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(str(item).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def _tokenize(texts: list[str]):
    import bm25s

    try:
        import Stemmer

        stemmer = Stemmer.Stemmer(BM25_PARAMS["stemmer"]).stemWords
    except ImportError as exc:  # PyStemmer is in requirements.txt
        raise RuntimeError("install PyStemmer (requirements.txt) for the BM25 first stage") from exc
    return bm25s.tokenize(texts, stopwords=BM25_PARAMS["stopwords"], stemmer=stemmer, return_ids=False, show_progress=False)


def bm25_index_load_or_build(*, cache_dir: Path, corpus_key: str,
                             documents: Callable[[], tuple[list[str], list[str]]]):
    """(bm25s index, docids) of a corpus, built once and saved (numpy arrays + vocab; no pickle).
    `documents()` -> (docids, texts) is called only when the index is not on disk yet."""
    import bm25s

    index_dir = cache_dir / f"index-{_fingerprint([corpus_key, json.dumps(BM25_PARAMS, sort_keys=True)])}"
    if (index_dir / "docids.json").exists():
        retriever = bm25s.BM25.load(str(index_dir), show_progress=False)
        return retriever, json.loads((index_dir / "docids.json").read_text())
    docids, texts = documents()
    if not docids:
        raise ValueError("this benchmark has no documents: BM25 needs a corpus (or evaluate an uploaded run)")
    retriever = bm25s.BM25(k1=BM25_PARAMS["k1"], b=BM25_PARAMS["b"], method=BM25_PARAMS["method"])
    retriever.index(_tokenize(texts), show_progress=False)
    # Written to a temporary folder then renamed: a killed worker never leaves a half index behind.
    tmp = cache_dir / f".{index_dir.name}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    retriever.save(str(tmp), show_progress=False)
    (tmp / "docids.json").write_text(json.dumps(docids))
    try:
        tmp.rename(index_dir)
    except OSError:  # another worker finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return retriever, docids


def bm25_retrieve(*, cache_dir: Path, documents: Callable[[], tuple[list[str], list[str]]],
                  queries: Mapping[str, str], k: int = 100, excluded: Mapping[str, list[str]] | None = None,
                  corpus_key: str) -> dict[str, dict[str, float]]:
    """Top-k BM25 per query (after dropping the query's excluded ids), cached as JSON.
    `documents` is called only when the index is not cached yet; `corpus_key` identifies the corpus."""
    import numpy as np

    excluded = excluded or {}
    cache_dir.mkdir(parents=True, exist_ok=True)
    qids = list(queries)
    run_key = _fingerprint([corpus_key, json.dumps(BM25_PARAMS, sort_keys=True), k,
                            *(f"{q}\t{queries[q]}\t{','.join(sorted(excluded.get(q, ())))}" for q in qids)])
    run_path = cache_dir / f"run-{run_key}.json"
    if run_path.exists():
        return json.loads(run_path.read_text())
    retriever, docids = bm25_index_load_or_build(cache_dir=cache_dir, corpus_key=corpus_key, documents=documents)
    depth = min(len(docids), k + max((len(v) for v in excluded.values()), default=0))
    results, scores = retriever.retrieve(_tokenize([queries[q] for q in qids]), k=depth, show_progress=False,
                                         n_threads=1)
    run: dict[str, dict[str, float]] = {}
    for i, qid in enumerate(qids):
        drop = set(excluded.get(qid, ()))
        ranked = {}
        for idx, score in zip(np.asarray(results[i]).tolist(), np.asarray(scores[i]).tolist()):
            docid = docids[idx]
            if docid in drop or score <= 0:
                continue
            ranked[docid] = float(score)
            if len(ranked) >= k:
                break
        run[qid] = ranked
    tmp = run_path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(run))
    tmp.replace(run_path)
    return run
