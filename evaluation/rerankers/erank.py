"""Pointwise integer relevance (ERank, Cai et al. 2025, arXiv 2509.00520).

The model is asked for an integer score from 0 to 10 (the paper's Figure 5 prompt, one chat user turn), reasons,
and answers `<answer> s </answer>`. The score is read from the probabilities of the score strings at the answer
position:
- `rule="expected"` (default): the expected score, sum_k k * P(k) / sum_k P(k);
- `rule="paper"`: the paper's s * P(s), with s the most probable score (greedy decoding would write it).
P(k) is the probability of the whole string `str(k)`: tokenizers that split digits write "10" as "1", "0", so
P(1) = p("1") * (1 - p("0" | "1")) and P(10) = p("1") * p("0" | "1") (one more forward pass per shared prefix).
`mode="generate"` (default) reasons first, greedily, until the answer tag or `max_new_tokens` (then the reasoning
is closed and the tag appended); `mode="direct"` closes an empty reasoning at once, one forward pass per pair.
"""
from __future__ import annotations

from typing import Sequence

from .base import Reranker, causal_lm_load, last_logprobs

# Figure 5 of the paper ("Prompt for scoring with integers from 0 to 10"), word for word; the line breaks are
# ours (the figure's layout is an image).
PROMPT = (
    "Given a query and a document, please give a relevance score of 0 to 10. The goal or relevance definition "
    "is: {instruction}\n\n"
    "Here is the query: {query}\n"
    "Here is the document: {document}\n"
    "After thinking, directly choose a relevance score from [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].\n"
    "- 0 represents completely not related.\n"
    "- 10 means perfectly related.\n"
    "Desired output format:\n"
    "<think>\nput your thinking here\n</think><answer>\nOnly allows an integer here\n</answer>\n"
    "Your output:"
)
INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
SCORES = tuple(range(11))
ANSWER_OPEN = "<answer>"
THINK_CLOSE = "</think>"


def score_distribution(step_logprobs, score_ids: dict[int, list[int]]) -> dict[int, float]:
    """P(k) of each score string from the next-token log-probabilities after each shared prefix:
    `step_logprobs(prefix: tuple) -> {token id: logprob}` over the vocabulary. A score's string ends where no
    other score's string goes on, so P(k) = prod p(token | prefix) * (1 - sum p(continuations of k))."""
    import math

    out = {}
    for k, ids in score_ids.items():
        p = 1.0
        for i, tid in enumerate(ids):
            p *= math.exp(float(step_logprobs(tuple(ids[:i]))[tid]))
        continuations = {other[len(ids)] for other in score_ids.values()
                         if len(other) > len(ids) and list(other[:len(ids)]) == list(ids)}
        if continuations:
            step = step_logprobs(tuple(ids))
            p *= max(0.0, 1.0 - sum(math.exp(float(step[t])) for t in continuations))
        out[k] = p
    return out


def erank_score(dist: dict[int, float], *, rule: str = "expected") -> float:
    """The expected score (renormalized over the score strings) or the paper's s * P(s)."""
    if rule == "paper":
        s = max(dist, key=lambda k: (dist[k], -k))
        return float(s * dist[s])
    total = sum(dist.values())
    return float(sum(k * p for k, p in dist.items()) / total) if total > 0 else 0.0


class ERankReranker(Reranker):
    name = "erank"

    def __init__(self, path: str, *, instruction: str = INSTRUCTION, prompt: str = PROMPT, mode: str = "generate",
                 rule: str = "expected", max_new_tokens: int = 1024, max_length: int = 8192, batch_size: int = 8,
                 chat_template: bool = True, device: str | None = None, dtype: str = "auto"):
        if mode not in ("generate", "direct"):
            raise ValueError(f"mode must be 'generate' or 'direct', not {mode!r}")
        if rule not in ("expected", "paper"):
            raise ValueError(f"rule must be 'expected' or 'paper', not {rule!r}")
        self.torch, self.tokenizer, self.model, self.device = causal_lm_load(path, device=device, dtype=dtype,
                                                                             purpose="the ERank reranker")
        self.instruction, self.prompt, self.mode, self.rule = instruction, prompt, mode, rule
        self.max_new_tokens, self.max_length, self.batch_size = int(max_new_tokens), int(max_length), int(batch_size)
        self.chat_template = bool(chat_template) and bool(getattr(self.tokenizer, "chat_template", None))
        self.score_ids = {k: self.tokenizer.encode(str(k), add_special_tokens=False) for k in SCORES}

    @classmethod
    def from_config(cls, *, path: str, base_model: str, config: dict) -> "ERankReranker":
        keys = ("instruction", "prompt", "mode", "rule", "max_new_tokens", "max_length", "batch_size",
                "chat_template", "device", "dtype")
        return cls(path or base_model, **{k: config[k] for k in keys if k in config})

    def prompt_text(self, query: str, doc: str) -> str:
        """The model's input up to where it starts writing (the chat template's assistant turn when it has one)."""
        user = self.prompt.format(instruction=self.instruction, query=query, document=doc)
        if self.chat_template:
            return self.tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                                      add_generation_prompt=True)
        return user

    def _ids(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return ids[-(self.max_length - self.max_new_tokens - 4):]  # keep the end: the question is asked there

    def _reason(self, prompts: list[str]) -> list[str]:
        """Greedy reasoning up to the answer tag (stop string), closed and tagged when it never got there."""
        torch, tok = self.torch, self.tokenizer
        out = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start:start + self.batch_size]
            prompt_ids = [self._ids(p) for p in chunk]
            self.cost.add(calls=len(chunk), tokens_in=sum(len(x) for x in prompt_ids))
            batch = tok.pad({"input_ids": prompt_ids}, padding=True, return_tensors="pt")
            with torch.inference_mode():
                gen = self.model.generate(input_ids=batch["input_ids"].to(self.device),
                                          attention_mask=batch["attention_mask"].to(self.device),
                                          max_new_tokens=self.max_new_tokens, do_sample=False,
                                          stop_strings=[ANSWER_OPEN], tokenizer=tok, pad_token_id=tok.pad_token_id)
            new = gen[:, batch["input_ids"].shape[1]:]
            for p, row in zip(chunk, new):
                ids = [t for t in row.tolist() if t != tok.pad_token_id]
                self.cost.add(calls=0, tokens_out=len(ids))
                text = tok.decode(ids, skip_special_tokens=False)
                if ANSWER_OPEN in text:
                    out.append(p + text[:text.index(ANSWER_OPEN) + len(ANSWER_OPEN)])
                else:
                    out.append(p + text + ("" if THINK_CLOSE in text else f"\n{THINK_CLOSE}") + ANSWER_OPEN)
        return out

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        prompts = [self.prompt_text(q, d) for q, d in pairs]
        if self.mode == "direct":
            contexts = [p + f"<think>\n\n{THINK_CLOSE}{ANSWER_OPEN}" for p in prompts]
        else:
            contexts = self._reason(prompts)
        prefixes = sorted({tuple(ids[:i]) for ids in self.score_ids.values() for i in range(len(ids))}, key=len)
        base = [self._ids(c) for c in contexts]
        seqs = [(j, pre, ids + list(pre)) for j, ids in enumerate(base) for pre in prefixes]
        rows = last_logprobs(self.torch, self.model, self.tokenizer, [s for _, _, s in seqs],
                             batch_size=self.batch_size, device=self.device)
        self.cost.add(calls=len(seqs), tokens_in=sum(len(s) for _, _, s in seqs))
        by_pair: list[dict] = [{} for _ in pairs]
        for (j, pre, _), row in zip(seqs, rows):
            by_pair[j][pre] = row
        return [erank_score(score_distribution(lambda pre, j=j: by_pair[j][pre], self.score_ids), rule=self.rule)
                for j in range(len(pairs))]

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()
