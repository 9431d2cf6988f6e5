"""The table of reranking strategies: one source for kinds, building, feeding and `manage.py rerankers`."""
from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from evaluation import services
from evaluation.models import RerankerModel
from evaluation.rerankers import (STRATEGIES, RerankerUnavailableError, reranker_build, strategy_available,
                                  strategy_get)
from evaluation.rerankers.cross_encoder import CrossEncoderReranker
from tests.evaluation.conftest import minilm_path

FAMILIES = ("pointwise", "cross-encoder", "yes-no", "erank", "setwise", "first", "reasonrank", "insertrank",
            "embedding", "icr", "listwise")


def test_every_family_of_the_issue_is_in_the_table_and_the_model_choices():
    assert {s.family for s in STRATEGIES} >= set(FAMILIES)
    kinds = {value for value, _ in RerankerModel.Kind.choices}
    assert kinds == {"bm25"} | {s.kind for s in STRATEGIES}
    assert all(len(s.kind) <= RerankerModel._meta.get_field("kind").max_length for s in STRATEGIES)
    assert RerankerModel.Kind.CAUSAL_LM == "causal-lm" and RerankerModel.Kind.YES_NO == "yes-no"
    # Registered models keep their kind: "causal-lm" is the pointwise family, and the family name is an alias.
    assert strategy_get("causal-lm") is strategy_get("pointwise")


def test_the_table_imports_no_heavy_library():
    code = ("import sys; import evaluation.rerankers as r; r.kind_choices(); r.strategy_available('icr'); "
            "heavy = [m for m in ('torch', 'transformers', 'openai', 'vllm', 'sentence_transformers') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_family_missing_from_the_build_says_so(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.endswith(".setwise") else real(name, *a))
    assert strategy_available("setwise") is False
    monkeypatch.setitem(sys.modules, "evaluation.rerankers.setwise", None)  # import fails as a missing module
    with pytest.raises(RerankerUnavailableError, match="'setwise' is not available in this build"):
        reranker_build("setwise")
    with pytest.raises(ValueError, match="unknown backend 'vllm'"):
        reranker_build("cross-encoder", path="x", config={"backend": "vllm"})
    with pytest.raises(ValueError, match="no reranker for kind 'nope'"):
        reranker_build("nope")


def test_build_by_family_name_with_the_table_options():
    ce = reranker_build("cross-encoder", path=minilm_path(), config={"batch_size": 3, "max_length": 40, "ignored": 1})
    assert isinstance(ce, CrossEncoderReranker) and (ce.batch_size, ce.max_length) == (3, 40)


def test_rerankers_command_prints_one_line_per_family():
    out = StringIO()
    call_command("rerankers", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + len(STRATEGIES)
    for family in FAMILIES:
        line = next(li for li in lines[1:] if li.split()[0] == family)
        assert strategy_get(family).cost_unit in line and strategy_get(family).paper in line


@pytest.mark.django_db
def test_an_eval_run_of_a_family_missing_from_the_build_is_refused(scifact_small, artifacts_dir, monkeypatch):
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="sf")[0]
    model = services.reranker_model_register(name="sw", kind="setwise", path="m")
    # A build without the family's module: the table points at a module that is not there.
    setwise = strategy_get("setwise")
    monkeypatch.setitem(setwise.backends, setwise.default_backend, "no_such_setwise_module:SetwiseReranker")
    with pytest.raises(services.EvaluationError, match="'setwise' is not available in this build"):
        services.eval_run_create(benchmark=bench, model=model, top_k=5, enqueue=False)
    model.config = {"backend": "vllm"}
    model.save()
    with pytest.raises(services.EvaluationError, match="backend 'vllm' is not one of openai, transformers"):
        services.eval_run_create(benchmark=bench, model=model, top_k=5, enqueue=False)
