"""Pointwise yes/no under a chat template (Qwen3-Reranker style; ProRank and Prism-Reranker read the same way).

One forward pass per (query, passage): the prompt is a chat turn (system prompt, then `<Instruct>`, `<Query>`,
`<Document>` in the user turn, then an opened assistant turn with an empty reasoning block), and the score is
p(yes) = softmax(logit[no], logit[yes])[yes] at the last position. The defaults are the Qwen3-Reranker model card's
("Transformers Usage", Qwen/Qwen3-Reranker-0.6B README): prefix, suffix, instruction, `<Instruct>: ...` layout,
truncation of the middle part to `max_length - len(prefix) - len(suffix)` tokens, tokens "yes"/"no".
Every piece is configurable so a sibling model with its own system prompt or answer words can be registered.
"""
from __future__ import annotations

from typing import Sequence

from .base import Reranker, causal_lm_load, last_logprobs

SYSTEM = 'Judge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be "yes" or "no".'
PREFIX = "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
BODY = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"
MAX_LENGTH = 8192


def yes_no_body(query: str, doc: str, *, instruction: str = INSTRUCTION, body: str = BODY) -> str:
    """The user turn's text between the prefix and the suffix."""
    return body.format(instruction=instruction, query=query, doc=doc)


def answer_token_id(tokenizer, word: str) -> int:
    """The id of an answer word: the vocabulary entry itself (as the model card looks it up), else its encoding
    when that is one token."""
    tid = tokenizer.convert_tokens_to_ids(word)
    if tid is not None and tid != tokenizer.unk_token_id:
        return int(tid)
    ids = tokenizer.encode(word, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"answer word {word!r} is not one token of this tokenizer ({ids})")
    return int(ids[0])


class YesNoReranker(Reranker):
    name = "yes-no"

    def __init__(self, path: str, *, system: str = SYSTEM, prefix: str = PREFIX, suffix: str = SUFFIX,
                 instruction: str = INSTRUCTION, body: str = BODY, yes_token: str = "yes", no_token: str = "no",
                 max_length: int = MAX_LENGTH, batch_size: int = 8, device: str | None = None, dtype: str = "auto"):
        self.torch, self.tokenizer, self.model, self.device = causal_lm_load(path, device=device, dtype=dtype,
                                                                             purpose="the yes/no reranker")
        self.instruction, self.body = instruction, body
        self.prefix_ids = self.tokenizer.encode(prefix.format(system=system), add_special_tokens=False)
        self.suffix_ids = self.tokenizer.encode(suffix, add_special_tokens=False)
        self.yes_id = answer_token_id(self.tokenizer, yes_token)
        self.no_id = answer_token_id(self.tokenizer, no_token)
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        if self.max_length - len(self.prefix_ids) - len(self.suffix_ids) < 16:
            raise ValueError(f"max_length {max_length} leaves no room for the query and passage after the "
                             f"{len(self.prefix_ids) + len(self.suffix_ids)} template tokens")

    @classmethod
    def from_config(cls, *, path: str, base_model: str, config: dict) -> "YesNoReranker":
        keys = ("system", "prefix", "suffix", "instruction", "body", "yes_token", "no_token", "max_length",
                "batch_size", "device", "dtype")
        return cls(path or base_model, **{k: config[k] for k in keys if k in config})

    def input_ids(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        """prefix + body (truncated to fit) + suffix, as the model card's `process_inputs` builds them."""
        bodies = [yes_no_body(q, d, instruction=self.instruction, body=self.body) for q, d in pairs]
        enc = self.tokenizer(bodies, padding=False, truncation="longest_first", return_attention_mask=False,
                             max_length=self.max_length - len(self.prefix_ids) - len(self.suffix_ids))
        return [self.prefix_ids + ids + self.suffix_ids for ids in enc["input_ids"]]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        ids = self.input_ids(pairs)
        rows = last_logprobs(self.torch, self.model, self.tokenizer, ids, batch_size=self.batch_size, device=self.device)
        self.cost.add(calls=len(ids), tokens_in=sum(len(x) for x in ids))
        pair = self.torch.stack([self.torch.stack([r[self.no_id], r[self.yes_id]]) for r in rows])
        return self.torch.log_softmax(pair, dim=1)[:, 1].exp().tolist()

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()
