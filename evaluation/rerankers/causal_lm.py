"""Pointwise causal-LM reranker in the Rank1/LimRank style: the score of a pair is
p(true) = e^lp(" true") / (e^lp(" true") + e^lp(" false")) at the answer position after `</think>`.

Two backends with the same scoring rule: transformers (CPU or GPU) and vLLM (GPU: prefix caching, logprobs;
all pairs in one batch). `mode="generate"` reasons first, as Rank1 does (greedy until `</think> true|false`;
a reasoning that never closes is cut at its last full sentence, `\n</think>` is appended and one token forced;
failing that 0.5). `mode="direct"` closes the reasoning at once and reads the answer (cheap, no reasoning).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from training.lora import causal_lm_score_pairs

from .base import Reranker, require
from .prompts import FALSE_TOKEN, STOP_STRINGS, TRUE_TOKEN, rank1_prompt, truncate_at_sentence


def true_probability(lp_true: float, lp_false: float) -> float:
    """exp(lp_true) / (exp(lp_true) + exp(lp_false)), computed stably."""
    m = max(lp_true, lp_false)
    a, b = math.exp(lp_true - m), math.exp(lp_false - m)
    return a / (a + b)


def answer_token_ids(tokenizer) -> tuple[int, int]:
    return (tokenizer(TRUE_TOKEN, add_special_tokens=False).input_ids[0],
            tokenizer(FALSE_TOKEN, add_special_tokens=False).input_ids[0])


def _adapter_base(path: str) -> str | None:
    cfg = Path(path) / "adapter_config.json"
    if cfg.exists():
        return json.loads(cfg.read_text()).get("base_model_name_or_path")
    return None


class CausalLMReranker(Reranker):
    """transformers backend. `path` is a full model or a LoRA adapter folder (merged into its base)."""

    name = "causal-lm"

    def __init__(self, path: str, *, base_model: str = "", mode: str = "generate", max_new_tokens: int = 8192,
                 batch_size: int = 8, max_length: int = 4096, device: str | None = None, dtype: str = "auto"):
        torch = require("torch", install="torch (requirements.txt)", purpose="the causal-LM reranker")
        transformers = require("transformers", install="transformers (requirements.txt)", purpose="the causal-LM reranker")
        if mode not in ("generate", "direct"):
            raise ValueError(f"mode must be 'generate' or 'direct', not {mode!r}")
        self.torch, self.mode = torch, mode
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        base = _adapter_base(path)
        load_from = base_model or base or path
        torch_dtype = (torch.bfloat16 if self.device.startswith("cuda") else torch.float32) if dtype == "auto" else getattr(torch, dtype)
        tok_src = path if (Path(path) / "tokenizer_config.json").exists() else load_from
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(tok_src)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = transformers.AutoModelForCausalLM.from_pretrained(load_from, dtype=torch_dtype)
        if base is not None:
            peft = require("peft", install="peft (requirements.txt)", purpose="a LoRA adapter")
            if len(self.tokenizer) != model.get_input_embeddings().weight.shape[0]:
                model.resize_token_embeddings(len(self.tokenizer))  # training added <think> tokens
            model = peft.PeftModel.from_pretrained(model, path).merge_and_unload()
        self.model = model.to(self.device).eval()
        self.true_id, self.false_id = answer_token_ids(self.tokenizer)
        self.max_new_tokens, self.batch_size, self.max_length = max_new_tokens, batch_size, max_length
        self._shared_scorer = causal_lm_score_pairs

    # -- scoring helpers
    def _next_token_logprobs(self, texts: list[str]) -> list[tuple[float, float]]:
        torch = self.torch
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length,
                             add_special_tokens=False).to(self.device)
        # Left padding: positions must count real tokens only, or a padded row scores differently from alone.
        position_ids = (enc.attention_mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, position_ids=position_ids).logits[:, -1, :].float()
        lp = torch.log_softmax(logits, dim=-1)
        return [(float(lp[i, self.true_id]), float(lp[i, self.false_id])) for i in range(len(texts))]

    def _forced(self, prompts: list[str], reasonings: list[str]) -> list[float]:
        texts = [p + truncate_at_sentence(r) + "\n</think>" for p, r in zip(prompts, reasonings)]
        try:
            return [true_probability(t, f) for t, f in self._next_token_logprobs(texts)]
        except Exception:  # noqa: BLE001 - Rank1 falls back to 0.5 when even the forced answer fails
            return [0.5] * len(prompts)

    def _generate(self, prompts: list[str]) -> list[float]:
        torch = self.torch
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length,
                             add_special_tokens=False).to(self.device)
        out = self.model.generate(**enc, do_sample=False, max_new_tokens=self.max_new_tokens, output_logits=True,
                                  return_dict_in_generate=True, stop_strings=list(STOP_STRINGS), tokenizer=self.tokenizer,
                                  pad_token_id=self.tokenizer.pad_token_id)
        new_tokens = out.sequences[:, enc.input_ids.shape[1]:]
        scores: list[float | None] = []
        unfinished, reasonings = [], []
        for i in range(len(prompts)):
            ids = new_tokens[i].tolist()
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            # The answer is the last real token before padding; its logits give both log-probabilities.
            pos = None
            for j in range(len(ids) - 1, -1, -1):
                if ids[j] in (self.true_id, self.false_id):
                    pos = j
                    break
            if pos is not None and any(s in text for s in STOP_STRINGS):
                lp = torch.log_softmax(out.logits[pos][i].float(), dim=-1)
                scores.append(true_probability(float(lp[self.true_id]), float(lp[self.false_id])))
            else:
                scores.append(None)
                unfinished.append(i)
                reasonings.append(text.replace(self.tokenizer.pad_token or "", ""))
        if unfinished:
            for i, s in zip(unfinished, self._forced([prompts[i] for i in unfinished], reasonings)):
                scores[i] = s
        return [float(s) for s in scores]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        prompts = [rank1_prompt(q, d) for q, d in pairs]
        scores: list[float] = []
        with self.torch.inference_mode():
            for start in range(0, len(prompts), self.batch_size):
                batch = prompts[start:start + self.batch_size]
                if self.mode == "direct":
                    scores += [true_probability(t, f) for t, f in self._next_token_logprobs([p + "\n</think>" for p in batch])]
                elif self._shared_scorer is not None:
                    # The training engineer's scorer (same prompt and tokens as training): one definition of the rule.
                    scores += self._shared_scorer(self.model, self.tokenizer, list(pairs[start:start + self.batch_size]),
                                                  max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)
                else:
                    scores += self._generate(batch)
        return scores

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()


class VLLMCausalLMReranker(Reranker):
    """vLLM backend (GPU hosts: `pip install -r requirements-gpu.txt`): Rank1's own settings, temperature 0,
    logprobs 20, stop at the answer, prefix caching (the passages of a query share the prompt's head),
    all pairs submitted in one batch."""

    name = "causal-lm-vllm"

    def __init__(self, path: str, *, base_model: str = "", mode: str = "generate", max_new_tokens: int = 8192,
                 max_length: int = 16384, gpu_memory_utilization: float = 0.9, tensor_parallel_size: int = 1, **_):
        vllm = require("vllm", install="vllm (pip install -r requirements-gpu.txt, on a GPU host)",
                       purpose="the vLLM scoring backend")
        transformers = require("transformers", install="transformers (requirements.txt)", purpose="the vLLM backend")
        self.vllm, self.mode = vllm, mode
        base = _adapter_base(path)
        model = base_model or base or path
        self.lora = None
        kwargs = dict(model=model, enable_prefix_caching=True, max_model_len=max_length,
                      gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size)
        if base is not None:
            from vllm.lora.request import LoRARequest

            kwargs.update(enable_lora=True, max_lora_rank=64)
            self.lora = LoRARequest("adapter", 1, path)
        tok_src = path if (Path(path) / "tokenizer_config.json").exists() else model
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(tok_src)
        if base is not None and (Path(path) / "tokenizer_config.json").exists():
            kwargs["tokenizer"] = path
        self.llm = vllm.LLM(**kwargs)
        self.true_id, self.false_id = answer_token_ids(self.tokenizer)
        self.sampling = vllm.SamplingParams(temperature=0, max_tokens=max_new_tokens, logprobs=20,
                                            stop=list(STOP_STRINGS), include_stop_str_in_output=True,
                                            skip_special_tokens=False)
        self.forced = vllm.SamplingParams(temperature=0, max_tokens=1, logprobs=20,
                                          allowed_token_ids=[self.true_id, self.false_id])

    def _from_logprobs(self, logprobs) -> float | None:
        if not logprobs:
            return None
        last = logprobs[-1]
        if self.true_id not in last or self.false_id not in last:
            return None
        return true_probability(last[self.true_id].logprob, last[self.false_id].logprob)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        prompts = [rank1_prompt(q, d) for q, d in pairs]
        if self.mode == "direct":
            outs = self.llm.generate([p + "\n</think>" for p in prompts], self.forced, lora_request=self.lora)
            return [self._from_logprobs(o.outputs[0].logprobs) or 0.5 for o in outs]
        outs = self.llm.generate(prompts, self.sampling, lora_request=self.lora)
        scores: list[float | None] = []
        retry = []
        for i, o in enumerate(outs):
            text = o.outputs[0].text
            s = self._from_logprobs(o.outputs[0].logprobs) if text.rstrip().endswith(STOP_STRINGS) else None
            scores.append(s)
            if s is None:
                retry.append((i, prompts[i] + truncate_at_sentence(text) + "\n</think>"))
        if retry:
            forced = self.llm.generate([t for _, t in retry], self.forced, lora_request=self.lora)
            for (i, _), o in zip(retry, forced):
                scores[i] = self._from_logprobs(o.outputs[0].logprobs)
        return [0.5 if s is None else float(s) for s in scores]

    def close(self) -> None:
        del self.llm
