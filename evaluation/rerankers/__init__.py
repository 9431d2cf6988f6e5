"""Rerankers behind one interface, one module per family, built by kind; heavy imports happen on build."""
from __future__ import annotations

from django.conf import settings

from .base import Reranker, RerankerDependencyError
from .causal_lm import CausalLMReranker, VLLMCausalLMReranker
from .cross_encoder import CrossEncoderReranker
from .listwise import ListwiseReranker

__all__ = ["Reranker", "RerankerDependencyError", "reranker_build", "reranker_for_model", "POINTWISE_KINDS"]

POINTWISE_KINDS = ("cross-encoder", "causal-lm")


def reranker_build(kind: str, *, path: str = "", base_model: str = "", config: dict | None = None) -> Reranker:
    """kind: cross-encoder | causal-lm (config backend: transformers | vllm) | listwise."""
    config = dict(config or {})
    if kind == "cross-encoder":
        keep = {k: config[k] for k in ("batch_size", "max_length", "device") if k in config}
        return CrossEncoderReranker(path or base_model, **keep)
    if kind == "causal-lm":
        backend = config.pop("backend", "transformers")
        keep = {k: config[k] for k in ("mode", "max_new_tokens", "batch_size", "max_length", "device", "dtype",
                                       "gpu_memory_utilization", "tensor_parallel_size") if k in config}
        if backend == "vllm":
            keep.pop("batch_size", None), keep.pop("device", None), keep.pop("dtype", None)
            return VLLMCausalLMReranker(path or base_model, base_model=base_model, **keep)
        if backend != "transformers":
            raise ValueError(f"unknown causal-LM backend {backend!r} (transformers or vllm)")

        return CausalLMReranker(path or base_model, base_model=base_model if path else "", **keep)
    if kind == "listwise":
        return ListwiseReranker(
            model=config.get("model") or path or settings.LIMRANK_REASONER_MODEL,
            base_url=config.get("base_url") or settings.LIMRANK_REASONER_BASE_URL,
            api_key=settings.LIMRANK_REASONER_API_KEY,  # keys stay in the environment, never in model rows
            window=int(config.get("window", 20)), step=int(config.get("step", 10)),
            timeout=settings.LIMRANK_LLM_TIMEOUT, max_retries=settings.LIMRANK_LLM_MAX_RETRIES,
        )
    raise ValueError(f"no reranker for kind {kind!r}")


def reranker_for_model(model) -> Reranker:
    """The reranker of a RerankerModel row (its artifact's path when it came from a training job)."""
    path = model.path or (model.artifact.path if model.artifact_id else "")
    return reranker_build(model.kind, path=path, base_model=model.base_model, config=model.config)
