"""The one interface every reranker implements (AnswerDotAI `rerankers` style)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


class RerankerDependencyError(ImportError):
    """A reranker family needs an optional package that is not installed."""


class RerankerUnavailableError(ValueError):
    """A reranker family is in the table of strategies but its module is not part of this build."""


@dataclass
class CostCounter:
    """What a reranker spent: model calls (forward passes, generate calls or API requests), tokens in and out.
    An eval run reads it per chunk and divides by the queries; the clock is the run's."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    def add(self, *, calls: int = 1, tokens_in: int = 0, tokens_out: int = 0) -> None:
        self.calls += int(calls)
        self.tokens_in += int(tokens_in)
        self.tokens_out += int(tokens_out)

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out}


def require(module: str, *, install: str, purpose: str):
    """Import an optional heavy dependency, or say exactly what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RerankerDependencyError(f"{purpose} needs `{module}`: install {install}") from exc


class Reranker:
    """score(query, docs) -> one relevance score per doc (higher is better); rank() sorts by it.
    score_pairs() scores (query, doc) pairs across queries at once (pointwise models batch them)."""

    name = "reranker"
    # How many pairs an eval run hands to one `score_pairs` call (None: all of them at once, for a backend that
    # schedules its own batches, like vLLM). Progress and the run's checkpoint advance per call.
    pairs_per_call: int | None = 512

    @property
    def cost(self) -> CostCounter:
        """The one counter every reranker reports through (created on first use: subclasses keep their own
        __init__ without calling ours)."""
        counter = self.__dict__.get("_cost")
        if counter is None:
            counter = self.__dict__["_cost"] = CostCounter()
        return counter

    @property
    def on_gpu(self) -> bool:
        """Whether the model runs on a GPU here (the run then records GPU-seconds)."""
        return str(getattr(self, "device", "") or "").startswith("cuda")

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        raise NotImplementedError

    def score(self, query: str, docs: Sequence[str]) -> list[float]:
        return self.score_pairs([(query, d) for d in docs])

    def rank(self, query: str, docs: Sequence[str], doc_ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        ids = list(doc_ids) if doc_ids is not None else [str(i) for i in range(len(docs))]
        scores = self.score(query, docs)
        return sorted(zip(ids, scores), key=lambda x: x[1], reverse=True)

    def close(self) -> None:
        """Free model memory (workers run one eval after another)."""


def causal_lm_load(path: str, *, device: str | None = None, dtype: str = "auto", attn_implementation: str | None = None,
                   purpose: str = "a causal-LM reranker"):
    """(torch, tokenizer, model, device) for the transformers rerankers that read a causal LM's logits or attention
    (yes/no, ERank, ICR): left padding, a pad token, bfloat16 on a GPU and float32 on a CPU unless `dtype` says."""
    torch = require("torch", install="torch (requirements.txt)", purpose=purpose)
    transformers = require("transformers", install="transformers (requirements.txt)", purpose=purpose)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = (torch.bfloat16 if device.startswith("cuda") else torch.float32) if dtype == "auto" else getattr(torch, dtype)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = {"dtype": torch_dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs).to(device).eval()
    return torch, tokenizer, model, device


def last_logprobs(torch, model, tokenizer, id_lists: Sequence[list[int]], *, batch_size: int, device: str):
    """Log-softmax over the vocabulary at the last position of each token-id list, left-padded batches of similar
    lengths (the order of the input is kept in the output)."""
    order = sorted(range(len(id_lists)), key=lambda i: len(id_lists[i]))
    out = [None] * len(id_lists)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [list(id_lists[i]) for i in idx]}, padding=True, return_tensors="pt")
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits[:, -1, :].float()
            for i, row in zip(idx, torch.log_softmax(logits, dim=-1)):
                out[i] = row.cpu()
    return out
