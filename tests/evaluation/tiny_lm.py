"""Tiny causal LMs for the reranker tests: a local byte-level tokenizer, a random Qwen2 saved to a folder (what a
registered model's path points at) and a scripted variant whose last-position logits are a known function of the
input, so a ranking rule that reads the wrong position or token fails."""
from __future__ import annotations

from pathlib import Path

WORDS = ["yes", "no", "0 1 2 3 4 5 6 7 8 9 10", "<answer>", "apple", "pear", "Query:", "Document:", "N/A"]


def tokenizer():
    from training.tiny import byte_level_tokenizer

    texts = [" ".join(WORDS)] * 50 + ["yes"] * 200 + ["no"] * 200 + ["apple pear"] * 100
    return byte_level_tokenizer(texts, vocab_size=400)


def saved_model(dest: Path, *, layers: int = 2, seed: int = 0) -> str:
    """A random tiny Qwen2 and its tokenizer in `dest` (loadable by AutoModelForCausalLM)."""
    from training.tiny import tiny_qwen

    tok = tokenizer()
    model = tiny_qwen(tok, layers=layers, seed=seed)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return str(dest)


def scripted(tok, logits_of):
    """A Qwen2 whose last-position logits are `logits_of(ids: list[int]) -> {token id: logit}` (0 elsewhere),
    computed from the non-padding tokens of each row."""
    import torch
    from transformers import Qwen2ForCausalLM

    from training.tiny import tiny_qwen

    class Scripted(Qwen2ForCausalLM):
        def forward(self, input_ids=None, attention_mask=None, **kwargs):
            out = super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            last = torch.zeros_like(out.logits[:, -1, :])
            for row in range(input_ids.shape[0]):
                ids = input_ids[row]
                if attention_mask is not None:
                    ids = ids[attention_mask[row].bool()]
                for tid, value in logits_of(ids.tolist()).items():
                    last[row, tid] = value
            out.logits = out.logits.clone()
            out.logits[:, -1, :] = last
            return out

    return tiny_qwen(tok, model_class=Scripted)


def count_of(ids: list[int], pattern: list[int]) -> int:
    n = len(pattern)
    return sum(1 for i in range(len(ids) - n + 1) if ids[i:i + n] == pattern)
