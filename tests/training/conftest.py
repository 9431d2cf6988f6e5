"""Fixtures for training tests: a tiny Qwen2 on disk, SciFact-derived pairs, dataset versions with members."""
from __future__ import annotations

import gzip
import json
import os
import random

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """On a loaded 2-core machine two intra-op threads per process oversubscribe the CPU: measured 6.4 s/step
    for the MiniLM cross-encoder with 2 threads vs 1.3 s/step with 1."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory):
    """A 2-layer Qwen2 with random weights and the MiniLM package's tokenizer (no hub access)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from training.presets import minilm_path

    path = tmp_path_factory.mktemp("tiny-qwen")
    tok = AutoTokenizer.from_pretrained(minilm_path())
    tok.eos_token = "[SEP]"  # Qwen-like: an end token exists; the think tokens are added by the training code
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, bos_token_id=None, tie_word_embeddings=False,
    )
    Qwen2ForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def reasoning_rows(n: int) -> list[dict]:
    """Rank1-style members: reasoning then a label (half true, half false)."""
    rows = []
    for i in range(n):
        label = i % 2 == 0
        rows.append({
            "query_text": f"how long should eggs boil for case {i}",
            "instruction": "Prefer answers with exact times." if i % 3 == 0 else "",
            "passage_title": "Boiling eggs" if label else "Egg storage",
            "passage_text": (f"Hard-boiled eggs need {9 + i % 4} minutes." if label
                             else "Eggs keep for weeks in the fridge."),
            "reasoning_trace": ("The passage gives a boiling time, which is what the query asks." if label
                                else "The passage is about storage, not boiling time."),
            "label": label,
        })
    return rows


def scifact_rows(data_dir, *, n_positives: int = 150, negatives_per_positive: int = 1, seed: int = 7) -> list[dict]:
    """Positives from qrels/test.tsv, negatives sampled from the rest of the corpus."""
    rng = random.Random(seed)
    queries = {}
    with open(data_dir / "queries.jsonl") as fh:
        for line in fh:
            q = json.loads(line)
            queries[q["_id"]] = q["text"]
    qrels = []
    with open(data_dir / "qrels" / "test.tsv") as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0 and qid in queries:
                qrels.append((qid, did))
    corpus = {}
    with gzip.open(data_dir / "corpus.jsonl.gz", "rt") as fh:
        for line in fh:
            d = json.loads(line)
            corpus[d["_id"]] = (d.get("title", ""), d["text"])
    doc_ids = sorted(corpus)
    qrels = [q for q in qrels if q[1] in corpus][:n_positives]
    rows = []
    for qid, did in qrels:
        title, text = corpus[did]
        rows.append({"query_text": queries[qid], "instruction": "", "passage_title": title, "passage_text": text,
                     "reasoning_trace": "", "label": True})
        for _ in range(negatives_per_positive):
            neg = rng.choice(doc_ids)
            while neg == did:
                neg = rng.choice(doc_ids)
            title, text = corpus[neg]
            rows.append({"query_text": queries[qid], "instruction": "", "passage_title": title, "passage_text": text,
                         "reasoning_trace": "", "label": False})
    rng.shuffle(rows)
    return rows


def make_dataset_version(rows: list[dict]):
    """A READY DatasetVersion whose members are the given rows (examples created in bulk)."""
    from curation import models as cm
    from curation.hashing import example_content_hash, text_hash
    from tests import factories

    version = factories.DatasetVersionFactory(content_hash="f" * 64, example_count=len(rows))
    query = factories.GeneratedQueryFactory()
    passages = cm.Passage.objects.bulk_create([
        cm.Passage(text=f"{r['passage_text']} #{i}", title=r["passage_title"], kind="positive", source="test",
                   text_hash=text_hash(f"{r['passage_text']} #{i}"))
        for i, r in enumerate(rows)
    ])
    examples = cm.Example.objects.bulk_create([
        cm.Example(query=query, passage=p, intended_label=r["label"], reasoning_trace=r["reasoning_trace"],
                   origin="synthetic", status="approved",
                   content_hash=example_content_hash(query=query.text, passage=p.text, label=r["label"]))
        for p, r in zip(passages, rows)
    ])
    cm.DatasetVersionMember.objects.bulk_create([
        cm.DatasetVersionMember(version=version, example=e, position=i, origin="synthetic", content_hash=e.content_hash,
                                **{k: r[k] for k in ("query_text", "instruction", "passage_title", "passage_text",
                                                     "reasoning_trace", "label")})
        for i, (e, r) in enumerate(zip(examples, rows))
    ])
    return version
