"""Pointwise causal-LM reranker in the Rank1/LimRank style, two backends with one scoring rule.

The prompt, the stop strings, the truncation fallback and p(true) all come from `curation.protocol`; a backend
only supplies log-probabilities: transformers through `training.lora.causal_lm_generate/causal_lm_force` (CPU or
GPU), vLLM here (GPU: prefix caching, one `generate` over every pair it is given). `mode="generate"` reasons
first, as the reference does; `mode="direct"` closes an empty reasoning at once and reads the answer.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from curation import protocol
from training.lora import _prompt_ids, answer_token_ids, causal_lm_score_pairs

from .base import Reranker, require


def _adapter_base(path: str) -> str | None:
    cfg = Path(path) / "adapter_config.json"
    if cfg.exists():
        return json.loads(cfg.read_text()).get("base_model_name_or_path")
    return None


def _check_mode(mode: str) -> str:
    if mode not in ("generate", "direct"):
        raise ValueError(f"mode must be 'generate' or 'direct', not {mode!r}")
    return mode


class CausalLMReranker(Reranker):
    """transformers backend. `path` is a full model or a LoRA adapter folder (merged into its base)."""

    name = "causal-lm"

    def __init__(self, path: str, *, base_model: str = "", mode: str = "generate",
                 max_new_tokens: int = protocol.MAX_NEW_TOKENS, batch_size: int = 8,
                 max_length: int = protocol.CONTEXT_SIZE, device: str | None = None, dtype: str = "auto"):
        torch = require("torch", install="torch (requirements.txt)", purpose="the causal-LM reranker")
        transformers = require("transformers", install="transformers (requirements.txt)", purpose="the causal-LM reranker")
        self.torch, self.mode = torch, _check_mode(mode)
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
        self.max_new_tokens, self.batch_size, self.context_size = max_new_tokens, batch_size, max_length

    @classmethod
    def from_config(cls, *, path: str, base_model: str, config: dict) -> "CausalLMReranker":
        keep = {k: config[k] for k in ("mode", "max_new_tokens", "batch_size", "max_length", "device", "dtype")
                if k in config}
        return cls(path or base_model, base_model=base_model if path else "", **keep)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        details = causal_lm_score_pairs(self.model, self.tokenizer, list(pairs), mode=self.mode,
                                        max_new_tokens=self.max_new_tokens, context_size=self.context_size,
                                        batch_size=self.batch_size, return_details=True)
        # Cost: each pair's prompt (as the backend cuts it) and what it wrote (its text re-encoded: the backend does
        # not return the written ids); a forced answer is one more call.
        prompts = [protocol.pointwise_prompt(q, p) for q, p in pairs]
        n_in = sum(len(ids) for ids in _prompt_ids(self.tokenizer, prompts, self.context_size - 1))
        n_out = sum(len(self.tokenizer.encode(d["text"], add_special_tokens=False)) for d in details if d["text"])
        forced = sum(1 for d in details if d["how"] == "forced")
        self.cost.add(calls=len(pairs) + forced, tokens_in=n_in, tokens_out=n_out)
        return [d["score"] for d in details]

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()


def vllm_logprobs(position) -> dict[int, float] | None:
    """vLLM's {token id: Logprob} of one position -> {token id: logprob}."""
    if not position:
        return None
    return {int(t): float(getattr(lp, "logprob", lp)) for t, lp in position.items()}


class VLLMCausalLMReranker(Reranker):
    """vLLM backend (GPU hosts: `pip install -r requirements-gpu.txt`), the reference's settings: temperature 0,
    logprobs 20, stop strings, 16,000-token context, every pair of a call in one `generate`, prefix caching
    (the passages of a query share the prompt's head)."""

    name = "causal-lm-vllm"
    pairs_per_call = None

    def __init__(self, path: str, *, base_model: str = "", mode: str = "generate",
                 max_new_tokens: int = protocol.MAX_NEW_TOKENS, max_length: int = protocol.CONTEXT_SIZE,
                 gpu_memory_utilization: float = 0.8, tensor_parallel_size: int = 1, dtype: str = "auto", **_):
        vllm = require("vllm", install="vllm (pip install -r requirements-gpu.txt, on a GPU host)",
                       purpose="the vLLM scoring backend")
        transformers = require("transformers", install="transformers (requirements.txt)", purpose="the vLLM backend")
        self.vllm, self.mode = vllm, _check_mode(mode)
        base = _adapter_base(path)
        model = base_model or base or path
        self.lora = None
        kwargs = dict(model=model, enable_prefix_caching=True, max_model_len=max_length, dtype=dtype,
                      gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size)
        tok_src = path if (Path(path) / "tokenizer_config.json").exists() else model
        if base is not None:
            from vllm.lora.request import LoRARequest

            kwargs.update(enable_lora=True, max_lora_rank=64)
            self.lora = LoRARequest("adapter", 1, path)
            kwargs["tokenizer"] = tok_src
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(tok_src)
        try:
            # Log-probabilities after the allowed-token mask, as the reference's vLLM returned them; the forced
            # step then always carries both answer tokens.
            self.llm = vllm.LLM(**kwargs, logprobs_mode="processed_logprobs")
        except TypeError:  # a vLLM without the option (V0 engines return processed log-probabilities anyway)
            self.llm = vllm.LLM(**kwargs)

        self.true_id, self.false_id = answer_token_ids(self.tokenizer)
        self.max_new_tokens, self.context_size = max_new_tokens, max_length
        self.sampling = vllm.SamplingParams(temperature=0, max_tokens=max_new_tokens, logprobs=protocol.TOP_LOGPROBS,
                                            stop=list(protocol.STOP_STRINGS), skip_special_tokens=False)
        self.forced = vllm.SamplingParams(temperature=0, max_tokens=1, logprobs=protocol.TOP_LOGPROBS,
                                          allowed_token_ids=[self.true_id, self.false_id], skip_special_tokens=False)

    @classmethod
    def from_config(cls, *, path: str, base_model: str, config: dict) -> "VLLMCausalLMReranker":
        keep = {k: config[k] for k in ("mode", "max_new_tokens", "max_length", "gpu_memory_utilization",
                                       "tensor_parallel_size") if k in config}
        return cls(path or base_model, base_model=base_model, **keep)

    on_gpu = True

    def _count(self, prompts: list[dict], outs) -> None:
        self.cost.add(calls=len(prompts), tokens_in=sum(len(p["prompt_token_ids"]) for p in prompts),
                      tokens_out=sum(len(getattr(o.outputs[0], "token_ids", None) or ()) for o in outs if o.outputs))

    def _token_prompts(self, texts: list[str], limit: int) -> list[dict]:
        return [{"prompt_token_ids": ids} for ids in _prompt_ids(self.tokenizer, texts, limit)]

    def _generate(self, texts: list[str]) -> list[protocol.Generation]:
        prompts = self._token_prompts(texts, self.context_size - 1)
        outs = self.llm.generate(prompts, self.sampling, lora_request=self.lora)
        self._count(prompts, outs)
        return [protocol.Generation(text=o.outputs[0].text,
                                    last_logprobs=vllm_logprobs(o.outputs[0].logprobs[-1]) if o.outputs[0].logprobs else None)
                for o in outs]

    def _force(self, texts: list[str]) -> list[dict[int, float] | None]:
        prompts = self._token_prompts(texts, self.context_size - 1)
        outs = self.llm.generate(prompts, self.forced, lora_request=self.lora)
        self._count(prompts, outs)
        return [vllm_logprobs(o.outputs[0].logprobs[-1]) if o.outputs and o.outputs[0].logprobs else None for o in outs]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        prompts = [protocol.pointwise_prompt(q, d) for q, d in pairs]
        if self.mode == "direct":
            results = protocol.direct_scores(prompts, force=self._force, true_id=self.true_id, false_id=self.false_id)
        else:
            results = protocol.pointwise_scores(prompts, generate=self._generate, force=self._force,
                                                true_id=self.true_id, false_id=self.false_id)
        return [r.score for r in results]

    def close(self) -> None:
        del self.llm
