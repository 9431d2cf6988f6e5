"""Rerankers behind one interface, one module per family, built from ONE table of strategies.

`STRATEGIES` is the single source: `RerankerModel.kind`'s choices, `reranker_build`, eval runs (how a run feeds
the reranker) and `manage.py rerankers` all read it. The table names modules and classes as strings and imports
nothing heavy; a family's module is imported when a reranker of that family is built.

How an entry is built (`reranker_build`): `config["backend"]` (default: the first of `backends`) picks the
target "module:Class". When the class has a `from_config(*, path, base_model, config)` classmethod it is called
(the family reads its own config keys); otherwise the class is called as `Class(path or base_model, **kept)` with
the config keys named in `options`. A family whose module is not part of this build fails with
`RerankerUnavailableError`, which says so, instead of an ImportError.

`feed` says what an eval run hands the reranker: "pairs" -> `score_pairs([(query, passage), ...])` across
queries (pointwise, batched); "list" -> `score(query, passages)` one query at a time (listwise, setwise, ICR);
"list+scores" -> `score(query, passages, first_stage_scores=[...])` (InsertRank puts them in the prompt).
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field

from .base import Reranker, RerankerDependencyError, RerankerUnavailableError

__all__ = ["Reranker", "RerankerDependencyError", "RerankerUnavailableError", "Strategy", "STRATEGIES",
           "POINTWISE_KINDS", "reranker_build", "reranker_for_model", "strategy_get", "strategy_available",
           "kind_choices"]

_PKG = __name__


@dataclass(frozen=True)
class Strategy:
    family: str                      # the name `manage.py rerankers` prints
    kind: str                        # RerankerModel.kind (<= 16 characters)
    label: str                       # the kind's human label
    paper: str                       # the paper (and the authors' code) it follows
    backends: dict[str, str]         # backend -> "module:Class" (module relative to this package)
    cost_unit: str                   # what a run of it costs, in the unit that dominates
    feed: str = "pairs"              # "pairs" | "list" | "list+scores" (see module docstring)
    options: tuple[str, ...] = ()    # config keys passed to a class without `from_config`
    aliases: tuple[str, ...] = field(default=())

    @property
    def default_backend(self) -> str:
        return next(iter(self.backends))


_LM_OPTIONS = ("batch_size", "max_length", "device", "dtype")

STRATEGIES: tuple[Strategy, ...] = (
    Strategy("pointwise", "causal-lm", "Pointwise causal LM (true/false)",
             "Rank1 (Weller et al., 2025) / LimRank (arXiv 2510.23544); code SighingSnow/limrank",
             {"transformers": "causal_lm:CausalLMReranker", "vllm": "causal_lm:VLLMCausalLMReranker"},
             "tokens in + reasoning tokens out per pair", aliases=("pointwise", "rank1")),
    Strategy("cross-encoder", "cross-encoder", "Cross-encoder",
             "monoBERT (Nogueira & Cho, 2019); sentence-transformers CrossEncoder",
             {"transformers": "cross_encoder:CrossEncoderReranker"}, "tokens in per pair",
             options=("batch_size", "max_length", "device")),
    Strategy("yes-no", "yes-no", "Pointwise yes/no under a chat template",
             "Qwen3-Reranker (Zhang et al., 2025, arXiv 2506.05176); ProRank; Prism-Reranker",
             {"transformers": "yes_no:YesNoReranker", "vllm": "yes_no:VLLMYesNoReranker"},
             "tokens in per pair (one forward pass)"),
    Strategy("erank", "erank", "Pointwise integer relevance (expected score)",
             "ERank (Cai et al., 2025, arXiv 2509.00520)",
             {"transformers": "erank:ERankReranker"}, "tokens in per pair (+ reasoning tokens out)"),
    Strategy("setwise", "setwise", "Setwise selection (Rank-R1)",
             "Setwise (Zhuang et al., SIGIR 2024); Rank-R1 (Zhuang et al., 2025)",
             {"openai": "setwise:SetwiseReranker", "transformers": "setwise:TransformersSetwiseReranker"},
             "model calls x (tokens in + out)", feed="list"),
    Strategy("first", "first", "Listwise by first-token logits (FIRST)",
             "FIRST (Reddy et al., EMNLP 2024)",
             {"transformers": "first:FirstReranker"}, "one forward pass per window (tokens in)", feed="list"),
    Strategy("reasonrank", "reasonrank", "Listwise with reasoning (ReasonRank)",
             "ReasonRank (Liu et al., 2025)",
             {"openai": "reasonrank:ReasonRankReranker"}, "model calls per window x (tokens in + out)", feed="list"),
    Strategy("insertrank", "insertrank", "Listwise with first-stage scores in the prompt (InsertRank)",
             "InsertRank (2025)",
             {"openai": "insertrank:InsertRankReranker"}, "model calls per window x (tokens in + out)",
             feed="list+scores"),
    Strategy("embedding", "embedding", "Bi-encoder (cosine of embeddings)",
             "bi-encoder (Sentence-BERT, Reimers & Gurevych 2019); E2Rank (2025)",
             {"sentence-transformers": "embedding:EmbeddingReranker"}, "tokens in per distinct text",
             options=("batch_size", "max_length", "device")),
    Strategy("icr", "icr", "Attention-based in-context reranking (ICR)",
             "ICR (Chen et al., 2024, arXiv 2410.02642); code OSU-NLP-Group/In-Context-Reranking",
             {"transformers": "icr:ICRReranker"}, "two forward passes per query list (tokens in)", feed="list"),
    Strategy("listwise", "listwise", "Listwise sliding window (RankGPT)",
             "RankGPT (Sun et al., EMNLP 2023, arXiv 2304.09542)",
             {"openai": "listwise:ListwiseReranker"}, "model calls per window x (tokens in + out)", feed="list"),
)

_BY_NAME: dict[str, Strategy] = {}
for _s in STRATEGIES:
    for _name in (_s.kind, _s.family, *_s.aliases):
        _BY_NAME.setdefault(_name, _s)

POINTWISE_KINDS = tuple(s.kind for s in STRATEGIES if s.feed == "pairs")


def kind_choices() -> list[tuple[str, str]]:
    """RerankerModel.kind's choices: BM25 (first stage only, no reranker) then every strategy."""
    return [("bm25", "BM25 (first stage)")] + [(s.kind, s.label) for s in STRATEGIES]


def strategy_get(kind: str) -> Strategy:
    try:
        return _BY_NAME[kind]
    except KeyError:
        raise ValueError(f"no reranker for kind {kind!r} (known: {', '.join(s.kind for s in STRATEGIES)})") from None


def _module_of(target: str) -> tuple[str, str]:
    module, _, attr = target.partition(":")
    return f"{_PKG}.{module}", attr


def strategy_available(kind: str, backend: str | None = None) -> bool:
    """Whether the family's module is part of this build (found without importing it)."""
    strategy = strategy_get(kind)
    target = strategy.backends.get(backend or strategy.default_backend)
    return target is not None and importlib.util.find_spec(_module_of(target)[0]) is not None


def _target(strategy: Strategy, backend: str):
    target = strategy.backends.get(backend)
    if target is None:
        raise ValueError(f"{strategy.family}: unknown backend {backend!r} (one of {', '.join(strategy.backends)})")
    module, attr = _module_of(target)
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # the module exists and lacks a dependency: say what to install
            raise
        raise RerankerUnavailableError(
            f"reranker family {strategy.family!r} is not available in this build ({module} is missing)") from None
    return getattr(mod, attr)


def reranker_build(kind: str, *, path: str = "", base_model: str = "", config: dict | None = None) -> Reranker:
    """A reranker of a kind (or family name / alias) from a model's path, base model and config."""
    strategy = strategy_get(kind)
    config = dict(config or {})
    backend = config.pop("backend", None) or strategy.default_backend
    cls = _target(strategy, backend)
    if hasattr(cls, "from_config"):
        return cls.from_config(path=path, base_model=base_model, config=config)
    return cls(path or base_model, **{k: config[k] for k in strategy.options if k in config})


def reranker_for_model(model) -> Reranker:
    """The reranker of a RerankerModel row (its artifact's path when it came from a training job)."""
    path = model.path or (model.artifact.path if model.artifact_id else "")
    return reranker_build(model.kind, path=path, base_model=model.base_model, config=model.config)
