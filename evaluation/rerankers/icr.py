"""Attention-based in-context reranking (ICR; Chen et al. 2024, "Attention in Large Language Models Yields
Efficient Zero-Shot Re-Rankers", arXiv 2410.02642), following the authors' `src/in_context_reranker.py`
(GitHub OSU-NLP-Group/In-Context-Reranking):

- one prompt holds every candidate ("[i] passage", separated by blank lines), then the late instruction,
  "Query:" and the query (their 'instruct' template with the query last);
- a passage's score is the attention that the query part (late instruction to the end) pays to the passage's
  tokens: per layer, averaged over the query tokens, summed over heads and layers, summed over the passage;
- calibrated ("masked_NA_calibration", their default method) by the same attention under the content-free query
  "N/A": per token, calibrated = attention - attention(N/A); tokens at or below mean - 2 std of the passage's
  calibrated values are masked out; the score is the sum of what is left. `scoring="query_last"` skips the
  calibration.
- the authors' BEIR script puts the first stage's best passages last (nearest the query: `reverse_doc_order`)
  and cuts passages to 300 words (`truncate_by_space`); both are the defaults here.

Attention weights are read from the eager attention of each decoder layer through forward hooks, reduced to the
query rows at once (the full [heads, tokens, tokens] maps are not kept), so any transformers causal LM whose
attention modules return their weights works; the authors read them from FlashAttention-2 queries and keys
instead, which is the same quantity.
"""
from __future__ import annotations

from typing import Sequence

from .base import Reranker, causal_lm_load

RETRIEVAL = {
    "QA": (" Here are some paragraphs:",
           "Please answer the following question based on the information in the paragraphs above."),
    "IE": (" Here are some paragraphs:",
           "Please find information that are relevant to the following query in the paragraphs above."),
}
CALIBRATION_QUERY = "N/A"


def icr_prompt(query: str, docs: Sequence[str], *, retrieval_type: str = "QA", prefix: str = "", suffix: str = "",
               separator: str = "\n\n") -> tuple[str, list[tuple[int, int]], int]:
    """The prompt, each passage's character span ("[i] passage") and where the query part starts."""
    early, late = RETRIEVAL[retrieval_type]
    text = prefix + early
    spans = []
    for i, doc in enumerate(docs):
        text += separator
        item = f"[{i + 1}] {doc}"
        spans.append((len(text), len(text) + len(item)))
        text += item
    text += separator
    query_start = len(text)
    text += late + separator + "Query:" + f" {query.strip()}" + suffix
    return text, spans, query_start


def icr_calibrated(token_scores, token_scores_na):
    """One passage's score from its per-token attention under the query and under "N/A" (masked calibration)."""
    calibrated = token_scores - token_scores_na
    threshold = calibrated.mean() - 2 * calibrated.std()
    mask = calibrated > threshold
    return float((token_scores * mask - token_scores_na * mask).sum())


class ICRReranker(Reranker):
    name = "icr"

    def __init__(self, path: str, *, retrieval_type: str = "QA", prompt_prefix: str = "", prompt_suffix: str = "",
                 separator: str = "\n\n", scoring: str = "masked_NA_calibration", reverse_doc_order: bool = True,
                 truncate_by_space: int = 300, device: str | None = None, dtype: str = "auto"):
        if retrieval_type not in RETRIEVAL:
            raise ValueError(f"retrieval_type must be one of {', '.join(RETRIEVAL)}, not {retrieval_type!r}")
        if scoring not in ("masked_NA_calibration", "query_last"):
            raise ValueError(f"scoring must be 'masked_NA_calibration' or 'query_last', not {scoring!r}")
        self.torch, self.tokenizer, self.model, self.device = causal_lm_load(
            path, device=device, dtype=dtype, attn_implementation="eager", purpose="the ICR reranker")
        self.retrieval_type, self.prefix, self.suffix, self.separator = retrieval_type, prompt_prefix, prompt_suffix, separator
        self.scoring, self.reverse, self.truncate = scoring, bool(reverse_doc_order), int(truncate_by_space)

    @classmethod
    def from_config(cls, *, path: str, base_model: str, config: dict) -> "ICRReranker":
        keys = ("retrieval_type", "prompt_prefix", "prompt_suffix", "separator", "scoring", "reverse_doc_order",
                "truncate_by_space", "device", "dtype")
        return cls(path or base_model, **{k: config[k] for k in keys if k in config})

    def _attention_layers(self):
        layers = getattr(getattr(self.model, "model", None), "layers", None)
        if layers is None:
            raise ValueError("ICR needs a decoder whose layers are model.model.layers[i].self_attn")
        return [layer.self_attn for layer in layers]

    def token_attention(self, text: str, query_start: int):
        """(token ids' character offsets, per-token attention from the query part: summed over layers and heads,
        averaged over the query tokens)."""
        torch = self.torch
        enc = self.tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping")[0].tolist()
        q_start = next(i for i, (s, e) in enumerate(offsets) if e > s and s >= query_start)
        total = []

        def hook(_module, _inputs, output):
            weights = output[1]  # [batch, heads, tokens, tokens] from the eager attention
            if weights is None:
                raise ValueError("the attention returned no weights: ICR needs attn_implementation='eager'")
            total.append(weights[0, :, q_start:, :].float().mean(1).sum(0))  # mean over query rows, sum heads

        handles = [m.register_forward_hook(hook) for m in self._attention_layers()]
        try:
            with torch.inference_mode():
                self.model(input_ids=enc["input_ids"].to(self.device), attention_mask=enc["attention_mask"].to(self.device))
        finally:
            for h in handles:
                h.remove()
        self.cost.add(calls=1, tokens_in=int(enc["input_ids"].shape[1]))
        return offsets, torch.stack(total).sum(0).cpu()

    @staticmethod
    def _span_tokens(offsets, span):
        return [i for i, (s, e) in enumerate(offsets) if e > s and span[0] <= s < span[1]]

    def score(self, query: str, docs: Sequence[str]) -> list[float]:
        if not docs:
            return []
        order = list(range(len(docs)))[::-1] if self.reverse else list(range(len(docs)))
        texts = [" ".join(docs[i].split()[:self.truncate]) if self.truncate > 0 else docs[i] for i in order]
        kw = dict(retrieval_type=self.retrieval_type, prefix=self.prefix, suffix=self.suffix, separator=self.separator)
        text, spans, q_start = icr_prompt(query, texts, **kw)
        offsets, attn = self.token_attention(text, q_start)
        token_spans = [self._span_tokens(offsets, s) for s in spans]
        if self.scoring == "query_last":
            placed = [float(attn[idx].sum()) for idx in token_spans]
        else:
            na_text, na_spans, na_start = icr_prompt(CALIBRATION_QUERY, texts, **kw)
            na_offsets, na_attn = self.token_attention(na_text, na_start)
            placed = []
            for idx, na_span in zip(token_spans, na_spans):
                na_idx = self._span_tokens(na_offsets, na_span)
                assert na_idx == idx, "the passages precede the query: same tokens under both queries"
                placed.append(icr_calibrated(attn[idx], na_attn[na_idx]))
        scores = [0.0] * len(docs)
        for pos, i in enumerate(order):
            scores[i] = placed[pos]
        return scores

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise TypeError("ICR reads one query's whole list in one prompt: call score(query, docs)")

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()
