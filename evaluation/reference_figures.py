"""Published figures shown on the leaderboard as "reported (citation)", apart from what was measured here.
Values are as printed in the papers (percent). The first stage is recorded with every figure: it moves
the numbers more than most models do."""
from __future__ import annotations

from .benchmarks import BRIGHT_TASKS

RANK1 = "Weller et al., rank1: Test-Time Compute for Reranking in Information Retrieval (arXiv 2502.18418), Table 1"
RANK1_URL = "https://arxiv.org/abs/2502.18418"
LIMRANK = "LimRank: Less is More for Reasoning-Intensive Information Reranking (arXiv 2510.23544)"
LIMRANK_URL = "https://arxiv.org/abs/2510.23544"
REASONRANK = "ReasonRank: Empowering Passage Ranking with Strong Reasoning Ability (arXiv 2508.07050)"
REASONRANK_URL = "https://arxiv.org/abs/2508.07050"
ERANK = ("Cai et al., ERank: Fusing Supervised Fine-Tuning and Reinforcement Learning for Effective and Efficient "
         "Text Reranking (arXiv 2509.00520), abstract")
ERANK_URL = "https://arxiv.org/abs/2509.00520"
INSERTRANK = ("Seetharaman et al., InsertRank: LLMs can reason over BM25 scores to Improve Listwise Reranking "
              "(arXiv 2506.14086), abstract")
INSERTRANK_URL = "https://arxiv.org/abs/2506.14086"

_BRIGHT_ROWS = {
    # system: (first stage, per-task values in BRIGHT_TASKS order, average)
    "BM25": ("none (BM25 on the original queries)",
             [19.2, 27.1, 14.9, 12.5, 13.5, 16.5, 15.2, 24.4, 7.9, 6.0, 13.0, 6.9], 14.8),
    "BM25 on GPT-4o CoT queries": ("none (BM25 on GPT-4o reasoning-expanded queries)",
                                   [53.6, 53.6, 24.3, 38.6, 18.8, 22.7, 25.9, 19.3, 17.7, 3.9, 18.9, 20.2], 26.5),
    "Rank1-7B": ("BM25 on GPT-4o CoT queries, top 100",
                 [48.8, 36.7, 20.8, 35.0, 22.0, 18.7, 36.2, 12.7, 31.2, 6.3, 23.7, 37.8], 27.5),
}


def reference_rows() -> list[dict]:
    rows = []
    for system, (first_stage, values, avg) in _BRIGHT_ROWS.items():
        for task, value in zip(BRIGHT_TASKS, values):
            rows.append(dict(system=system, benchmark=f"BRIGHT/{task}", metric="ndcg_cut_10", value=value,
                             first_stage=first_stage, citation=RANK1, url=RANK1_URL))
        rows.append(dict(system=system, benchmark="BRIGHT", metric="ndcg_cut_10", value=avg, first_stage=first_stage,
                         citation=RANK1, url=RANK1_URL, notes="average over the 12 tasks"))
    for system, avg in (("Rank1-14B", 28.7), ("Rank1-32B", 29.4)):
        rows.append(dict(system=system, benchmark="BRIGHT", metric="ndcg_cut_10", value=avg,
                         first_stage="BM25 on GPT-4o CoT queries, top 100", citation=RANK1, url=RANK1_URL,
                         notes="average over the 12 tasks"))
    limrank_stage = "BM25 on GPT-4o CoT queries; the released evaluation reranks the top 10"
    rows += [
        dict(system="LimRank-7B", benchmark="BRIGHT", metric="ndcg_cut_10", value=28.0, first_stage=limrank_stage,
             citation=LIMRANK, url=LIMRANK_URL, notes="average over the 12 tasks"),
        dict(system="LimRank-7B", benchmark="FollowIR", metric="p_mrr", value=1.2, first_stage="FollowIR's top-ranked lists",
             citation=LIMRANK, url=LIMRANK_URL, notes="p-MRR x100, averaged over Robust04, News21, Core17"),
        dict(system="LimRank-7B", benchmark="LitSearch", metric="recall_5", value=60.1, first_stage="as in the paper",
             citation=LIMRANK, url=LIMRANK_URL),
        dict(system="LimRank-7B", benchmark="GPQA", metric="accuracy", value=30.3, first_stage="RAG: retrieve, rerank, answer",
             citation=LIMRANK, url=LIMRANK_URL, notes="downstream QA accuracy (%)"),
        dict(system="ReasonRank", benchmark="BRIGHT", metric="ndcg_cut_10", value=40.6,
             first_stage="ReasonIR top 100, window 20, step 10", citation=REASONRANK,
             url=REASONRANK_URL, notes="leaderboard state of the art at publication"),
        dict(system="ERank-4B", benchmark="BRIGHT", metric="ndcg_cut_10", value=38.7, first_stage="as in the paper",
             citation=ERANK, url=ERANK_URL),
        dict(system="ERank-32B", benchmark="BRIGHT", metric="ndcg_cut_10", value=40.2, first_stage="as in the paper",
             citation=ERANK, url=ERANK_URL),
        dict(system="InsertRank (DeepSeek-R1)", benchmark="BRIGHT", metric="ndcg_cut_10", value=37.5,
             first_stage="as in the paper", citation=INSERTRANK, url=INSERTRANK_URL,
             notes="R2MED 51.1"),
    ]
    return rows
