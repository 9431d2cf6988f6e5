"""Setwise reranking with reasoning (Rank-R1, Zhuang et al., 2025; setwise: Zhuang et al., SIGIR 2024; code
ielab/llm-rankers): the model reads a small set of passages (the parent and its `num_child` children in a
heap, or a bubble window), reasons in `<think>`, and names the most relevant one as `<answer>[i]</answer>`.
The top `k` are sorted by repeated picks, heap sort (default) or bubble sort as the authors do; the rest keep
their first-stage order after them.

Ported from `llmrankers/setwise.py` (`heapify`, `heapSort`, bubble sort, `rerank`) and Rank-R1's
`R1SetwiseLlmRanker.compare` (`Rank-R1/run_setwise.py`): identifiers `[1]`…`[20]`, the passages of a set shown in
a shuffled order (their `random.sample`, seed 929) and the pick mapped back, `num_permutation` > 1 votes with
random tie-breaking, an unreadable answer keeps the parent in place. Backends: an OpenAI-compatible endpoint or
a local transformers model; every model call goes through `complete()` and is counted in `cost`."""
from __future__ import annotations

import random
import re
from collections import Counter
from typing import Sequence

from .base import Reranker, causal_lm_load, require
from .listwise import ChatBackend

CHARACTERS = [f"[{i + 1}]" for i in range(20)]
SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant "
    "first thinks about the reasoning process in the mind and then provides the user with the answer. The reasoning "
    "process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., "
    "<think> reasoning process here </think> <answer> answer here </answer>."
)
USER = (
    'Given the query: "{query}", which of the following documents is most relevant?\n{docs}\nAfter completing the '
    "reasoning process, please provide only the label of the most relevant document to the query, enclosed in square "
    "brackets, within the answer tags. For example, if the third document is the most relevant, the answer should be: "
    "<think> reasoning process here </think> <answer>[3]</answer>."
)
PATTERN = r"<think>.*?</think>\s*<answer>(.*?)</answer>"
UNEXPECTED = "Unexpected voting."


def setwise_messages(query: str, passages: Sequence[str]) -> list[dict]:
    docs = "\n".join(f"{CHARACTERS[i]} {p}" for i, p in enumerate(passages))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER.format(query=query, docs=docs)}]


def setwise_answer(completion: str) -> str | None:
    """The label inside `<answer>` after the reasoning ("[2]"), or None (Rank-R1's pattern, on the lowercased text)."""
    match = re.search(PATTERN, completion.lower(), re.DOTALL)
    return match.group(1).strip() if match else None


class TransformersChat:
    """A local chat model: the chat template, greedy decoding, the decoded completion (special tokens kept, so
    `<think>` survives). Counts calls and tokens on the reranker's counter."""

    def __init__(self, path: str, *, max_new_tokens: int = 2048, device: str | None = None, model=None, tokenizer=None):
        if model is None or tokenizer is None:
            self.torch, tokenizer, model, self.device = causal_lm_load(path, device=device, purpose="the setwise reranker")
        else:  # a model built in memory (tests)
            self.torch = require("torch", install="torch (requirements.txt)", purpose="the setwise reranker")
            self.device = device or ("cuda" if self.torch.cuda.is_available() else "cpu")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"setwise needs a chat model: the tokenizer of {path or 'the model'} has no chat template")
        self.tokenizer, self.model = tokenizer, model.to(self.device).eval()
        self.max_new_tokens, self.cost = int(max_new_tokens), None

    def complete(self, messages: list[dict]) -> str:
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(self.device)
        with self.torch.inference_mode():
            out = self.model.generate(ids, do_sample=False, max_new_tokens=self.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        new = out[0, ids.shape[1]:]
        self.cost.add(tokens_in=ids.shape[1], tokens_out=new.shape[0])
        return self.tokenizer.decode(new, skip_special_tokens=False)


class SetwiseReranker(Reranker):
    name = "setwise"

    def __init__(self, *, backend, num_child: int = 3, k: int = 10, method: str = "heapsort", num_permutation: int = 1,
                 shuffle: bool = True, seed: int = 929, max_words: int | None = None):
        if method not in ("heapsort", "bubblesort"):
            raise ValueError(f"setwise method {method!r}: heapsort or bubblesort")
        if not 1 <= int(num_child) <= len(CHARACTERS) - 1:
            raise ValueError(f"num_child {num_child}: between 1 and {len(CHARACTERS) - 1} (a set is a parent and its children)")
        self.backend = backend
        self.backend.cost = self.cost  # every call is counted on the reranker's own counter
        self.num_child, self.k, self.method = int(num_child), int(k), method
        self.num_permutation, self.shuffle = int(num_permutation), bool(shuffle)
        self.random = random.Random(seed)
        self.max_words = max_words

    OPTIONS = ("num_child", "k", "method", "num_permutation", "shuffle", "seed", "max_words")

    @classmethod
    def from_config(cls, *, path: str, base_model: str, config: dict) -> "SetwiseReranker":
        backend = ChatBackend.from_config(path=path, config=config, max_tokens=2048)
        return cls(backend=backend, **{k: config[k] for k in cls.OPTIONS if k in config})

    # ---- one comparison: the most relevant passage of a set

    def compare(self, query: str, docs: Sequence[str]) -> str:
        """The label (in the order given) of the most relevant of `docs`, or "Unexpected voting."."""
        id_passage = list(enumerate(docs))
        candidates = []
        for _ in range(self.num_permutation):
            shown = self.random.sample(id_passage, len(id_passage)) if self.shuffle else id_passage
            completion = self.backend.complete(setwise_messages(query, [p for _, p in shown]))
            answer = setwise_answer(completion)
            labels = CHARACTERS[: len(shown)]
            if answer is not None and answer in labels:
                candidates.append(shown[labels.index(answer)][0])
        if not candidates:
            return UNEXPECTED
        counts = Counter(candidates)
        best = max(counts.values())
        tied = [c for c, n in counts.items() if n == best]
        return CHARACTERS[tied[0] if len(tied) == 1 else self.random.choice(tied)]

    def _best(self, query: str, docs: Sequence[str]) -> int:
        output = self.compare(query, docs)
        return CHARACTERS.index(output) if output in CHARACTERS else 0

    # ---- sorting by repeated picks (ielab's heap sort and bubble sort, on indices)

    def _heapify(self, arr: list[int], n: int, i: int, query: str, texts: Sequence[str]) -> None:
        if self.num_child * i + 1 < n:
            inds = [i] + list(range(self.num_child * i + 1, min(self.num_child * (i + 1) + 1, n)))
            best = self._best(query, [texts[arr[j]] for j in inds])
            largest = inds[best] if best < len(inds) else i
            if largest != i:
                arr[i], arr[largest] = arr[largest], arr[i]
                self._heapify(arr, n, largest, query, texts)

    def _heap_sort(self, arr: list[int], query: str, texts: Sequence[str]) -> None:
        n, ranked = len(arr), 0
        for i in range(n // self.num_child, -1, -1):
            self._heapify(arr, n, i, query, texts)
        for i in range(n - 1, 0, -1):
            arr[i], arr[0] = arr[0], arr[i]
            ranked += 1
            if ranked == self.k:
                break
            self._heapify(arr, i, 0, query, texts)

    def _bubble_sort(self, ranking: list[int], query: str, texts: Sequence[str]) -> None:
        last_start = len(ranking) - (self.num_child + 1)
        for i in range(self.k):
            start_ind = last_start
            end_ind = last_start + (self.num_child + 1)
            is_change = False
            while True:
                if start_ind < i:
                    start_ind = i
                window = ranking[start_ind:end_ind]
                best_ind = self._best(query, [texts[j] for j in window])
                if best_ind >= len(window):
                    best_ind = 0
                if best_ind != 0:
                    ranking[start_ind], ranking[start_ind + best_ind] = ranking[start_ind + best_ind], ranking[start_ind]
                    if not is_change:
                        is_change = True
                        if last_start != len(ranking) - (self.num_child + 1) and best_ind == len(window) - 1:
                            last_start += len(window) - 1
                if start_ind == i:
                    break
                if not is_change:
                    last_start -= self.num_child
                start_ind -= self.num_child
                end_ind -= self.num_child

    def order(self, query: str, docs: Sequence[str]) -> list[int]:
        """Indices of `docs` (first-stage order): the top k by repeated picks, then the rest in their order."""
        texts = [" ".join(d.split()[: self.max_words]) if self.max_words else d for d in docs]
        ranking = list(range(len(docs)))
        if self.method == "heapsort":
            self._heap_sort(ranking, query, texts)
            ranking = list(reversed(ranking))
        else:
            self._bubble_sort(ranking, query, texts)
        top = ranking[: self.k]
        return top + [i for i in range(len(docs)) if i not in top]

    def score(self, query: str, docs: Sequence[str]) -> list[float]:
        scores = [0.0] * len(docs)
        for rank, i in enumerate(self.order(query, docs)):
            scores[i] = float(len(docs) - rank)
        return scores

    def score_pairs(self, pairs):
        raise TypeError("a setwise reranker ranks a query's whole list: call score(query, docs)")


class TransformersSetwiseReranker(SetwiseReranker):
    """Setwise over a local chat model (transformers), e.g. a Rank-R1 checkpoint."""

    @classmethod
    def from_config(cls, *, path: str, base_model: str, config: dict) -> "SetwiseReranker":
        backend = TransformersChat(path or base_model, max_new_tokens=int(config.get("max_new_tokens", 2048)),
                                   device=config.get("device"))
        return cls(backend=backend, **{k: config[k] for k in cls.OPTIONS if k in config})

    def close(self) -> None:
        del self.backend.model
        if self.backend.device.startswith("cuda"):
            self.backend.torch.cuda.empty_cache()
