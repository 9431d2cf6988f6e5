"""FIRST (Reddy et al., EMNLP 2024; code gangiswag/llm-reranker): listwise reranking from the logits of the
FIRST generated token. One forward pass per window over RankGPT's prompt with alphabetical identifiers
([A]…[T]) plus "[", then the window is ranked by the log-probabilities of the identifier letters at the next
position; letters outside the `logprobs` most likely tokens are treated as unranked and keep their order after
the others (their `_evaluate_logits` + `receive_permutation`). Windows and merge: the shared sliding window.

Backend: a local transformers causal LM with a chat template (the FIRST checkpoint, or any instruction model)."""
from __future__ import annotations

import re
from typing import Sequence

from .base import causal_lm_load, require
from .listwise import SlidingWindowReranker, fix_text

ALPH_START_IDX = ord("A") - 1
SYSTEM = "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query"


def replace_alpha(text: str) -> str:
    """FIRST's `_replace_number` for alphabetical identifiers: "[B]" inside a passage becomes "(B)"."""
    return re.sub(r"\[([A-z]+)\]", r"(\1)", text)


def first_messages(query: str, passages: Sequence[str], *, max_words: int = 300, system_supported: bool = True) -> list[dict]:
    """FIRST's `create_prompt` (text reranking, alphabetical identifiers, variable passages), before the chat template."""
    num = len(passages)
    context = (f"I will provide you with {num} passages, each indicated by a alphabetical identifier []. "
               f"Rank the passages based on their relevance to the search query: {query}.\n\n")
    for rank, passage in enumerate(passages, 1):
        content = passage.replace("Title: Content: ", "").strip()
        content = " ".join(content.split()[: int(max_words)])
        context += f"[{chr(ALPH_START_IDX + rank)}] {replace_alpha(content)}\n"
    context += (f"Search Query: {query}.\nRank the {num} passages above based on their relevance to the search query. "
                "All the passages should be included and listed using identifiers, in descending order of relevance. "
                "The output format should be [] > [], e.g., [B] > [A], Only respond with the ranking results, "
                "do not say any word or explain.")
    if system_supported:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": context}]
    return [{"role": "user", "content": SYSTEM + "\n " + context}]


def letters_ranked(logprobs: dict[str, float], *, window_size: int) -> list[int]:
    """FIRST's `_evaluate_logits` (alphabetical): single-letter tokens A.. up to the window size, best first, as
    0-based positions ("B" -> 1). `logprobs` maps each top token's decoded text to its log-probability."""
    evaluations: dict[int, float] = {}
    for token, logprob in logprobs.items():
        if len(token) == 1 and token.isalpha() and ALPH_START_IDX + 1 <= ord(token) <= ALPH_START_IDX + window_size:
            evaluations[ord(token)] = max(logprob, evaluations.get(ord(token), float("-inf")))
    return [code - ALPH_START_IDX - 1 for code, _ in sorted(evaluations.items(), key=lambda x: -x[1])]


class FirstReranker(SlidingWindowReranker):
    name = "first"

    def __init__(self, path: str = "", *, window: int = 20, step: int = 10, max_words: int = 300,
                 context_size: int = 4096, logprobs: int = 120, device: str | None = None, dtype: str = "auto",
                 model=None, tokenizer=None):
        if not 1 <= window <= 26 or not 1 <= step <= window:
            raise ValueError(f"FIRST window {window} / step {step}: identifiers are letters, so 1 <= step <= window <= 26")
        if model is None or tokenizer is None:
            self.torch, tokenizer, model, self.device = causal_lm_load(path, device=device, dtype=dtype,
                                                                       purpose="the FIRST reranker")
        else:  # a model built in memory (tests)
            self.torch = require("torch", install="torch (requirements.txt)", purpose="the FIRST reranker")
            self.device = device or ("cuda" if self.torch.cuda.is_available() else "cpu")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"FIRST needs a chat model: the tokenizer of {path or 'the model'} has no chat template")
        self.model, self.tokenizer = model.to(self.device).eval(), tokenizer
        self.window, self.step = int(window), int(step)
        self.max_words, self.context_size, self.logprobs = int(max_words), int(context_size), int(logprobs)
        self.system_supported = "system" in tokenizer.chat_template
        # FIRST's estimate of the answer's length, kept free in the context when passages are cut to fit.
        self.output_tokens = len(tokenizer.encode(" > ".join(f"[{i + 1}]" for i in range(self.window)))) - 1

    @classmethod
    def from_config(cls, *, path: str, base_model: str, config: dict) -> "FirstReranker":
        keep = {k: config[k] for k in ("window", "step", "max_words", "context_size", "logprobs", "device", "dtype")
                if k in config}
        return cls(path or base_model, **keep)

    def prompt(self, query: str, passages: Sequence[str]) -> str:
        """The chat-templated prompt, passages cut (by words) until it fits the context, as FIRST does."""
        max_words = self.max_words
        while True:
            messages = first_messages(query, passages, max_words=max_words, system_supported=self.system_supported)
            text = fix_text(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
            n_tokens = len(self.tokenizer.encode(text))
            if n_tokens <= self.context_size - self.output_tokens or max_words <= 1:
                return text
            max_words -= max(1, (n_tokens - self.context_size + self.output_tokens) // (len(passages) * 4))

    def next_token_logprobs(self, text: str) -> dict[str, float]:
        """The one model call of a window: the top `logprobs` next tokens after `text` + "[", decoded."""
        tok = self.tokenizer
        special = not (tok.bos_token and text.startswith(tok.bos_token))  # the template may already hold BOS
        ids = tok(text + "[", return_tensors="pt", add_special_tokens=special).input_ids.to(self.device)
        with self.torch.inference_mode():
            logits = self.model(input_ids=ids).logits[0, -1].float()
        lp = self.torch.log_softmax(logits, -1)
        top = self.torch.topk(lp, min(self.logprobs, lp.shape[0]))
        self.cost.add(tokens_in=ids.shape[1], tokens_out=1)
        out: dict[str, float] = {}
        for value, index in zip(top.values.tolist(), top.indices.tolist()):
            token = tok.decode([index])
            out[token] = max(value, out.get(token, float("-inf")))
        return out

    def permute(self, query: str, passages: Sequence[str], scores: Sequence[float] | None = None) -> list[int]:
        return letters_ranked(self.next_token_logprobs(self.prompt(query, passages)), window_size=self.window)

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()
