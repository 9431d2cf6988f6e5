"""A hand-computable audit: 10 examples, all intended relevant; the filter kept 6 and threw out 4.

The auditors' verdicts (correct = the verdict equals the intended label, i.e. "relevant"):
- kept:         4 relevant, 1 not relevant, 1 unusable    -> TP 4, FP 2
- filtered out: 1 relevant, 2 not relevant, 1 unusable    -> FN 1, TN 3
By hand: precision 4/6 = 0.6667, recall 4/5 = 0.8, F1 = 8/11 = 0.7273; Cohen's kappa: p_o = 7/10, p_e = 0.6*0.5 +
0.4*0.5 = 0.5, kappa = (0.7 - 0.5) / 0.5 = 0.4; Wilson 95% interval of the precision (z = 1.96, n = 6, p = 2/3):
centre (p + z^2/2n) / (1 + z^2/n) = 0.6016, half-width z/(1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2) = 0.3016,
so [0.3000, 0.9032]."""
from __future__ import annotations

from curation.models import Example, LLMCall
from tests import factories

KEPT_VERDICTS = ["relevant", "relevant", "relevant", "relevant", "not_relevant", "unusable"]
FILTERED_VERDICTS = ["relevant", "not_relevant", "not_relevant", "unusable"]


def audit_examples(*, dataset=None, run=None) -> tuple[list[Example], dict[int, str]]:
    """The ten examples and the verdict each gets (example id -> verdict)."""
    dataset = dataset or factories.DatasetFactory(name="audited")
    run = run or factories.GenerationRunFactory(dataset=dataset)
    examples, verdicts = [], {}
    for i, verdict in enumerate(KEPT_VERDICTS + FILTERED_VERDICTS):
        kept = i < len(KEPT_VERDICTS)
        ex = factories.ExampleFactory(
            dataset=dataset, generation_run=run, intended_label=True,
            reasoner_judgment=kept, judgment_votes=[True, True, True] if kept and i % 2 == 0 else
            ([True, True, False] if kept else [False, False, True]),
            status=Example.Status.APPROVED if kept else Example.Status.FILTERED_OUT,
            reasoner_model="deepseek-reasoner", prompt_versions={"reasoner": 1},
            reasoning_trace=f"SECRET-TRACE-{i}: relevant",
        )
        examples.append(ex)
        verdicts[ex.pk] = verdict
    # 10 reasoner calls of 1,000 tokens and $0.01 each: $0.10 over 6 kept x precision 2/3 = 4 correctly kept.
    LLMCall.objects.bulk_create([LLMCall(generation_run=run, role=LLMCall.Role.REASONER, model="deepseek-reasoner",
                                         tokens_in=800, tokens_out=200, cost_usd="0.01") for _ in range(10)])
    return examples, verdicts
