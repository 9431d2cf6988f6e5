"""Dataset diagnostics: failures no reviewer sees one example at a time.

- shortcuts: how well trivial features (passage length, passage/query length ratio, the BM25 score of the passage
  for the query, lexical overlap) predict the label, as a ROC AUC (sklearn). A model trained on data where one of
  them separates the labels learns the feature, not relevance; above SHORTCUT_WARN the datasheet warns.
- near-duplicates: MinHash LSH (datasketch) over the distinct queries and the distinct passages; clusters of texts
  that are near-copies of one another (Jaccard of shingles >= DUPLICATE_THRESHOLD).
- contamination: n-gram overlap (NGRAM tokens) of the queries and passages with the queries and documents of every
  benchmark loaded in the studio, per benchmark. A text shorter than NGRAM tokens counts as one gram (so a short
  query equal to a benchmark query is caught).

Pure functions over texts and labels; curation.services.diagnostics reads the rows and stores the results. The
benchmarks live in a higher app (evaluation), which registers its texts here (contamination_source_register), so
this app never imports it."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable

SHORTCUT_WARN = 0.75
DUPLICATE_THRESHOLD = 0.8
MINHASH_PERMUTATIONS = 64
NGRAM = 13
CHUNK = 5000
SHORTCUT_FEATURES = ("passage_length", "length_ratio", "bm25", "lexical_overlap")
_WORD = re.compile(r"\w+")

# name -> callable giving {benchmark name: iterable of its query and document texts}
_SOURCES: dict[str, Callable[[], dict[str, Iterable[str]]]] = {}


def contamination_source_register(name: str, source: Callable[[], dict[str, Iterable[str]]]) -> None:
    """A higher app hands over the texts to check against (evaluation: every loaded benchmark)."""
    _SOURCES[name] = source


def contamination_sources() -> dict[str, Iterable[str]]:
    out: dict[str, Iterable[str]] = {}
    for source in _SOURCES.values():
        out.update(source())
    return out


def words(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())


# ---------------------------------------------------------------- shortcuts


def _auc(labels: list[bool], values: list[float]) -> dict:
    from sklearn.metrics import roc_auc_score

    if len(set(labels)) < 2:
        return {"auc": None, "strength": None, "warning": False}
    auc = float(roc_auc_score(labels, values))
    strength = max(auc, 1 - auc)  # a feature that predicts the label backwards is as much a shortcut
    return {"auc": round(auc, 4), "strength": round(strength, 4), "warning": strength > SHORTCUT_WARN}


def bm25_scores(queries: list[str], passages: list[str]) -> list[float]:
    """The BM25 score (bm25s, English stopwords) of each passage for its own query, the statistics taken over the
    distinct passages given."""
    import bm25s

    distinct = list(dict.fromkeys(passages))
    index_of = {p: i for i, p in enumerate(distinct)}
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(distinct, stopwords="en", show_progress=False), show_progress=False)
    unique_queries = list(dict.fromkeys(queries))
    tokens = bm25s.tokenize(unique_queries, stopwords="en", return_ids=False, show_progress=False)
    by_query: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        by_query.setdefault(q, []).append(i)
    out = [0.0] * len(queries)
    for q, toks in zip(unique_queries, tokens):
        if not toks:
            continue
        scores = retriever.get_scores(toks)
        for i in by_query[q]:
            out[i] = float(scores[index_of[passages[i]]])
    return out


def shortcut_features(queries: list[str], passages: list[str]) -> dict[str, list[float]]:
    q_words = [words(q) for q in queries]
    p_words = [words(p) for p in passages]
    return {
        "passage_length": [float(len(p)) for p in p_words],
        "length_ratio": [len(p) / max(1, len(q)) for q, p in zip(q_words, p_words)],
        "bm25": bm25_scores(queries, passages),
        "lexical_overlap": [len(set(q) & set(p)) / max(1, len(set(q))) for q, p in zip(q_words, p_words)],
    }


def shortcut_aucs(*, queries: list[str], passages: list[str], labels: list[bool]) -> dict:
    """ROC AUC of each trivial feature as a predictor of the label, and whether any passes SHORTCUT_WARN."""
    features = shortcut_features(queries, passages)
    out = {name: _auc(labels, features[name]) for name in SHORTCUT_FEATURES}
    return {"n": len(labels), "positives": sum(labels), "threshold": SHORTCUT_WARN, "features": out,
            "warning": any(f["warning"] for f in out.values())}


# ---------------------------------------------------------------- near-duplicates


def _shingles(text: str, *, kind: str) -> set[bytes]:
    """Queries are short: character 4-grams of the normalized text. Passages: word 3-grams."""
    if kind == "query":
        s = " ".join(words(text))
        return {s[i:i + 4].encode("utf-8") for i in range(max(1, len(s) - 3))} if s else set()
    w = words(text)
    if len(w) < 3:
        return {" ".join(w).encode("utf-8")} if w else set()
    return {" ".join(w[i:i + 3]).encode("utf-8") for i in range(len(w) - 2)}


def duplicate_clusters(texts: list[str], *, kind: str, threshold: float = DUPLICATE_THRESHOLD) -> list[list[int]]:
    """Clusters (lists of indexes into `texts`, two or more each) of near-duplicate texts: MinHash LSH candidates,
    joined transitively. Equal texts are one text here (the caller decides whether repeats matter)."""
    from datasketch import MinHash, MinHashLSH

    distinct = list(dict.fromkeys(texts))
    shingles = [_shingles(t, kind=kind) for t in distinct]
    keep = [i for i, s in enumerate(shingles) if s]
    hashes = MinHash.bulk([shingles[i] for i in keep], num_perm=MINHASH_PERMUTATIONS)
    lsh = MinHashLSH(threshold=threshold, num_perm=MINHASH_PERMUTATIONS)
    with lsh.insertion_session() as session:
        for i, mh in zip(keep, hashes):
            session.insert(i, mh)
    parent = list(range(len(distinct)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    slot = {k: n for n, k in enumerate(keep)}
    for i, mh in zip(keep, hashes):
        for j in lsh.query(mh):
            # LSH gives candidates: confirm with the MinHash estimate of the Jaccard similarity.
            if j != i and mh.jaccard(hashes[slot[j]]) >= threshold:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(distinct)):
        groups.setdefault(find(i), []).append(i)
    position = {t: i for i, t in enumerate(distinct)}
    members: dict[int, list[int]] = {}
    for idx, t in enumerate(texts):
        members.setdefault(position[t], []).append(idx)
    return sorted(([idx for d in g for idx in members[d]] for g in groups.values() if len(g) > 1),
                  key=lambda c: (-len(c), c[0]))


def near_duplicates(*, texts: list[str], kind: str, examples: list[int] | None = None, show: int = 5) -> dict:
    """Cluster counts and a few clusters to look at (their texts, cut, and example ids)."""
    clusters = duplicate_clusters(texts, kind=kind)
    examples = examples if examples is not None else list(range(len(texts)))
    return {
        "distinct": len(set(texts)), "clusters": len(clusters),
        "texts_in_clusters": sum(len({texts[i] for i in c}) for c in clusters),
        "examples_in_clusters": sum(len(c) for c in clusters), "threshold": DUPLICATE_THRESHOLD,
        "largest": [{"size": len({texts[i] for i in c}), "examples": [examples[i] for i in c[:10]],
                     "texts": list(dict.fromkeys(texts[i][:160] for i in c))[:3]} for c in clusters[:show]],
    }


def one_per_cluster(*, keys: list, texts: list[str], kind: str) -> set:
    """The keys to drop so that one example (the first in `keys` order) is left of each near-duplicate cluster."""
    drop = set()
    for cluster in duplicate_clusters(texts, kind=kind):
        first_text = texts[min(cluster)]
        drop.update(keys[i] for i in cluster if texts[i] != first_text)
    return drop


# ---------------------------------------------------------------- contamination


class _Grams:
    """n-gram hashes over a shared vocabulary (numpy, vectorized): a rolling polynomial hash of token ids, modulo
    2^64. Tokens the checked texts never use get id 0, and a window holding one cannot match anything."""

    def __init__(self, n: int = NGRAM, seed: int = 13):
        import numpy as np

        self.n, self.np = n, np
        rng = np.random.default_rng(seed)
        self.powers = rng.integers(1, 2**63, size=n + 1, dtype=np.uint64) | np.uint64(1)
        self.vocab: dict[str, int] = {}

    def ids(self, text: str, *, grow: bool):
        if grow:
            return [self.vocab.setdefault(w, len(self.vocab) + 1) for w in words(text)]
        return [self.vocab.get(w, 0) for w in words(text)]

    def hashes(self, texts: list[str], *, grow: bool):
        """(hashes, owner): every gram of every text and the index of the text it came from."""
        with self.np.errstate(over="ignore"):  # the hash is modulo 2^64: wrapping is the arithmetic, not an error
            return self._hashes(texts, grow=grow)

    def _hashes(self, texts: list[str], *, grow: bool):
        np, n = self.np, self.n
        id_lists = [self.ids(t, grow=grow) for t in texts]
        lengths = np.array([len(x) for x in id_lists], dtype=np.int64)
        out_h, out_o = [], []
        long_idx = np.flatnonzero(lengths >= n)
        if len(long_idx):
            concat = np.array([i for k in long_idx for i in id_lists[k]], dtype=np.uint64)
            owner = np.repeat(long_idx, lengths[long_idx])
            windows = len(concat) - n + 1
            h = np.zeros(windows, dtype=np.uint64)
            for j in range(n):
                h += concat[j:j + windows] * self.powers[j]
            unknown = np.concatenate([[0], np.cumsum(concat == 0)])
            ok = (owner[:windows] == owner[n - 1:]) & (unknown[n:n + windows] - unknown[:windows] == 0)
            out_h.append(h[ok])
            out_o.append(owner[:windows][ok])
        short_idx = np.flatnonzero((lengths > 0) & (lengths < n))
        if len(short_idx):
            hs = np.zeros(len(short_idx), dtype=np.uint64)
            good = np.ones(len(short_idx), dtype=bool)
            for row, k in enumerate(short_idx):
                ids = np.array(id_lists[k], dtype=np.uint64)
                good[row] = bool(ids.all())
                hs[row] = (ids * self.powers[:len(ids)]).sum(dtype=np.uint64) + np.uint64(len(ids)) * self.powers[n]
            out_h.append(hs[good])
            out_o.append(short_idx[good])
        if not out_h:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        return np.concatenate(out_h), np.concatenate(out_o)


def contaminated(*, queries: list[str], passages: list[str], sources: dict[str, Iterable[str]] | None = None,
                 progress: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Per benchmark: which examples (indexes) share an n-gram with its queries or documents, by query and by
    passage. Each distinct text is hashed once; benchmark texts are streamed in chunks and looked up in the sorted
    grams of the version, so a large collection is never held in memory."""
    import numpy as np

    sources = contamination_sources() if sources is None else sources
    grams = _Grams()
    sides = {}
    for side, texts in (("queries", queries), ("passages", passages)):
        where: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            where.setdefault(t, []).append(i)
        distinct = list(where)
        h, owner = grams.hashes(distinct, grow=True)
        uniq, inverse = np.unique(h, return_inverse=True)
        sides[side] = (distinct, where, uniq, inverse, owner)
    out = {}
    for name, texts in sources.items():
        if progress:
            progress(name)
        hit = {side: np.zeros(len(v[2]), dtype=bool) for side, v in sides.items()}
        for chunk in _chunked(texts, []):
            bench, _ = grams.hashes(chunk, grow=False)
            for side, (_, _, uniq, _, _) in sides.items():
                if not len(bench) or not len(uniq):
                    continue
                pos = np.minimum(np.searchsorted(uniq, bench), len(uniq) - 1)
                hit[side][pos[uniq[pos] == bench]] = True
        out[name] = {}
        for side, (distinct, where, uniq, inverse, owner) in sides.items():
            texts_hit = set(owner[hit[side][inverse]].tolist()) if len(uniq) else set()
            out[name][side] = sorted(i for d in texts_hit for i in where[distinct[d]])
    return out


def _chunked(texts: Iterable[str], buf: list[str]):
    for t in texts:
        buf.append(t)
        if len(buf) >= CHUNK:
            yield list(buf)
            buf.clear()
    if buf:
        yield list(buf)
        buf.clear()


def contamination_summary(*, hits: dict[str, dict], examples: list[int], show: int = 10) -> dict:
    per = {}
    for name, h in sorted(hits.items()):
        either = sorted(set(h["queries"]) | set(h["passages"]))
        per[name] = {"examples": len(either), "by_query": len(h["queries"]), "by_passage": len(h["passages"]),
                     "share": round(len(either) / len(examples), 4) if examples else 0.0,
                     "sample": [examples[i] for i in either[:show]]}
    return {"ngram": NGRAM, "benchmarks": per,
            "examples": len({i for h in hits.values() for i in set(h["queries"]) | set(h["passages"])})}
