"""One-command GPU check, no hub: `python bench/gpu_check.py [--cpu]`.

Builds a small Qwen2-architecture model with random weights and a byte-level BPE tokenizer trained here on
SciFact text (training/tiny.py), then
  (a) LoRA-trains it for 50 steps with the `released` preset (training/presets.py): tokens/s, peak memory;
  (b) scores the same 2,000 SciFact pairs in `direct` mode with transformers and with vLLM: pairs/s of each,
      their ratio and the largest score difference (the two backends share the scoring rule in
      curation/protocol.py, so a difference comes from the numerics, not the rule);
  (c) loads the trained LoRA adapter in vLLM and scores a few pairs with it.
and prints one table. `--cpu` is the reduced mode CI runs (tests/bench/test_gpu_check.py): a smaller model,
3 training steps, 32 pairs, transformers only.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SCIFACT_DIRS = (ROOT / "evaluation" / "data" / "scifact", Path("/work/shared/data/scifact"))

FULL = dict(hidden=256, layers=4, heads=4, kv_heads=2, vocab=4096, steps=50, pairs=2000, per_device=4, accumulation=8,
            max_length=1024, score_batch=64)
CPU = dict(hidden=32, layers=2, heads=4, kv_heads=2, vocab=1024, steps=3, pairs=32, per_device=2, accumulation=1,
           max_length=256, score_batch=16)


def scifact(limit_docs: int = 3000):
    data = next((d for d in SCIFACT_DIRS if (d / "queries.jsonl").exists()), None)
    if data is None:
        raise SystemExit(f"SciFact not found in {', '.join(map(str, SCIFACT_DIRS))}")
    queries = {}
    for line in (data / "queries.jsonl").read_text().splitlines():
        q = json.loads(line)
        queries[q["_id"]] = q["text"]
    corpus = {}
    with gzip.open(data / "corpus.jsonl.gz", "rt") as fh:
        for line in fh:
            d = json.loads(line)
            corpus[d["_id"]] = (d.get("title", ""), d["text"])
            if len(corpus) >= limit_docs:
                break
    qrels = []
    for line in (data / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, grade = line.split("\t")
        if qid in queries and did in corpus and int(grade) > 0:
            qrels.append((qid, did))
    return queries, corpus, qrels


def pairs_and_rows(queries, corpus, qrels, n_pairs: int, seed: int = 7):
    """`n_pairs` (query, passage) pairs (judged positives and sampled others) and training rows from them."""
    from curation import protocol

    rng = random.Random(seed)
    docs = sorted(corpus)
    qids = sorted(queries)
    pairs, rows = [], []
    while len(pairs) < n_pairs:
        if qrels and len(pairs) % 2 == 0:
            qid, did = qrels[(len(pairs) // 2) % len(qrels)]
            label = True
        else:
            qid, did, label = rng.choice(qids), rng.choice(docs), False
        title, text = corpus[did]
        query = protocol.query_in_task_prompt(queries[qid], protocol.task_prompt("SciFact"))
        pairs.append((query, protocol.passage_join(title, text)))
        rows.append({"query_text": queries[qid], "instruction": "", "passage_title": title, "passage_text": text,
                     "reasoning_trace": "The abstract is about this claim." if label else "The abstract is about something else.",
                     "label": label})
    return pairs, rows


def build_model(work: Path, size: dict, corpus) -> Path:
    """A random Qwen2 saved with its tokenizer; the vocabulary is padded (as Qwen's is), so `<think>`/`</think>`
    fit in it without resizing the embeddings."""
    from curation import protocol
    from training.tiny import byte_level_tokenizer, tiny_qwen

    texts = [f"{t} {x}" for t, x in list(corpus.values())[:2000]] + [protocol.INSTRUCTION]
    tok = byte_level_tokenizer(texts, vocab_size=size["vocab"])
    model = tiny_qwen(tok, hidden_size=size["hidden"], layers=size["layers"], heads=size["heads"],
                      kv_heads=size["kv_heads"], max_positions=16384, vocab_size=len(tok) + 64)
    path = work / "base"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def peak_memory_mb() -> tuple[float, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "GPU"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "RSS"


def train(base: Path, work: Path, rows, size: dict, cpu: bool) -> tuple[dict, Path]:
    from training import lora
    from training.presets import config_build

    values = {"base_model": str(base), "output_dir": str(work / "job"), "max_steps": size["steps"],
              "per_device_batch_size": size["per_device"], "gradient_accumulation_steps": size["accumulation"],
              "max_length": size["max_length"], "save_steps": 10**6, "logging_steps": 1}
    if cpu:
        values["bf16"] = False
    config = config_build(preset="released", values=values)
    started = time.perf_counter()
    result = lora.train(config=config, rows=rows)
    seconds = time.perf_counter() - started
    mem, kind = peak_memory_mb()
    tokens = result.metrics.get("tokens_seen") or 0
    return {"steps": result.global_step, "seconds": seconds, "tokens_per_s": tokens / seconds if seconds else 0.0,
            "peak_mb": result.metrics.get("peak_memory_mb") or mem, "memory_kind": kind,
            "loss": result.train_loss}, Path(result.output_dir)


def score_transformers(base: Path, pairs, size: dict) -> tuple[list[float], float]:
    import torch
    from transformers import AutoModelForCausalLM

    from training import lora

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tok = lora.tokenizer_load(str(base), add_think_tokens=False, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype).to(device).eval()
    started = time.perf_counter()
    scores = lora.causal_lm_score_pairs(model, tok, pairs, mode="direct", batch_size=size["score_batch"])
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return scores, seconds


def score_vllm(path: Path, pairs) -> tuple[list[float], float]:
    from evaluation.rerankers.causal_lm import VLLMCausalLMReranker

    reranker = VLLMCausalLMReranker(str(path), mode="direct", gpu_memory_utilization=0.5, dtype="bfloat16")
    try:
        reranker.score_pairs(pairs[:8])  # warm-up: compile and graph capture are not scoring time
        started = time.perf_counter()
        scores = reranker.score_pairs(pairs)
        return scores, time.perf_counter() - started
    finally:
        reranker.close()


def row(name: str, value: str, note: str = "") -> tuple[str, str, str]:
    return name, value, note


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="reduced transformers-only mode (CI)")
    args = parser.parse_args(argv)
    size = CPU if args.cpu else FULL
    import torch

    if args.cpu:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    elif not torch.cuda.is_available():
        print("no GPU: run with --cpu for the reduced check", file=sys.stderr)
        return 2
    table: list[tuple[str, str, str]] = []
    failures = 0
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(tmp)
        queries, corpus, qrels = scifact()
        pairs, rows = pairs_and_rows(queries, corpus, qrels, size["pairs"])
        base = build_model(work, size, corpus)
        table.append(row("model", f"Qwen2 h{size['hidden']} x{size['layers']} layers, vocab {size['vocab']}",
                         "random weights, byte-level BPE built here"))

        t, adapter = train(base, work, rows, size, args.cpu)
        table.append(row("(a) LoRA train, preset released", f"{t['steps']} steps in {t['seconds']:.1f} s",
                         f"loss {t['loss']:.3f}" if t["loss"] is not None else ""))
        table.append(row("(a) tokens/s", f"{t['tokens_per_s']:.0f}", ""))
        table.append(row("(a) peak memory", f"{t['peak_mb']:.0f} MiB", t["memory_kind"]))

        hf_scores, hf_seconds = score_transformers(base, pairs, size)
        hf_rate = len(pairs) / hf_seconds
        table.append(row("(b) transformers direct", f"{hf_rate:.1f} pairs/s", f"{len(pairs)} SciFact pairs"))
        if args.cpu:
            table.append(row("(b) vLLM direct", "skipped", "--cpu"))
            table.append(row("(c) LoRA adapter in vLLM", "skipped", "--cpu"))
        else:
            try:
                v_scores, v_seconds = score_vllm(base, pairs)
                v_rate = len(pairs) / v_seconds
                diff = max(abs(a - b) for a, b in zip(hf_scores, v_scores))
                table.append(row("(b) vLLM direct", f"{v_rate:.1f} pairs/s", f"{len(pairs)} SciFact pairs"))
                table.append(row("(b) vLLM / transformers", f"{v_rate / hf_rate:.2f}x", "target >= 5x"))
                table.append(row("(b) max |score difference|", f"{diff:.4f}", "target <= 0.02"))
            except Exception as exc:  # noqa: BLE001 - the check reports what failed and goes on
                failures += 1
                traceback.print_exc()
                table.append(row("(b) vLLM direct", "FAILED", f"{type(exc).__name__}: {exc}"[:160]))
            try:
                a_scores, _ = score_vllm(adapter, pairs[:32])
                table.append(row("(c) LoRA adapter in vLLM", "loaded", f"scored {len(a_scores)} pairs"))
            except Exception as exc:  # noqa: BLE001
                failures += 1
                traceback.print_exc()
                table.append(row("(c) LoRA adapter in vLLM", "FAILED", f"{type(exc).__name__}: {exc}"[:160]))
        table.append(row("scores in [0, 1]", str(all(0.0 <= s <= 1.0 for s in hf_scores)), "transformers"))

    width = [max(len(r[i]) for r in table) for i in range(3)]
    print(f"gpu_check ({'cpu, reduced' if args.cpu else 'gpu'})")
    print("  ".join(h.ljust(w) for h, w in zip(("check", "result", "note"), width)))
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip())
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
