"""Cross-encoder: transformers AutoModelForSequenceClassification over (query, passage) pairs."""
from __future__ import annotations

from typing import Sequence

from .base import Reranker, require


class CrossEncoderReranker(Reranker):
    name = "cross-encoder"

    def __init__(self, path: str, *, batch_size: int = 32, max_length: int = 512, device: str | None = None):
        torch = require("torch", install="torch (requirements.txt)", purpose="the cross-encoder")
        transformers = require("transformers", install="transformers (requirements.txt)", purpose="the cross-encoder")
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.model = transformers.AutoModelForSequenceClassification.from_pretrained(path).to(self.device).eval()
        self.batch_size, self.max_length = batch_size, max_length

    def _logit(self, logits):
        # One output: its logit. Two classes: log-odds of "relevant" (monotone in its softmax probability).
        if logits.shape[-1] == 1:
            return logits[:, 0]
        return logits[:, -1] - logits[:, 0]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        torch = self.torch
        # Batches of similar lengths pad less: sort by length, score, then put the scores back in order.
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        scores = [0.0] * len(pairs)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self.tokenizer([pairs[i][0] for i in idx], [pairs[i][1] for i in idx], padding=True,
                                     truncation="longest_first", max_length=self.max_length, return_tensors="pt").to(self.device)
                values = self._logit(self.model(**enc).logits.float()).tolist()
                self.cost.add(calls=len(idx), tokens_in=int(enc["attention_mask"].sum()))
                for i, v in zip(idx, values):
                    scores[i] = float(v)
        return scores

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()
