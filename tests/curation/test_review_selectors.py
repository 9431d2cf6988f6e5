"""Review selectors: agreement (kappa, alpha, consensus), progress, the admin browser, data-quality figures."""
import pytest

from curation import review_charts
from curation.models import Example, GeneratedQuery, PromptTemplate, Review
from curation.selectors import review as sel
from tests import factories

pytestmark = pytest.mark.django_db


def _votes(dataset, table: dict):
    """table: reviewer -> list of decisions, one per example (None: no review)."""
    n = len(next(iter(table.values())))
    examples = factories.ExampleFactory.create_batch(n, dataset=dataset)
    for reviewer, decisions in table.items():
        for ex, d in zip(examples, decisions):
            if d:
                factories.ReviewFactory(example=ex, reviewer=reviewer, decision=d)
    return examples


def test_kappa_and_alpha_match_hand_computed_values():
    ds = factories.DatasetFactory(reviews_required=2)
    a, b = factories.reviewer(username="ann"), factories.reviewer(username="bob")
    _votes(ds, {a: ["approve", "approve", "reject", "reject"], b: ["approve", "reject", "reject", "reject"]})
    out = sel.review_agreement(dataset=ds)
    # 2x2 table: observed 3/4, expected 0.5*0.25 + 0.5*0.75 = 0.5 -> kappa 0.5.
    assert out["pairs"] == [{"a": "ann", "b": "bob", "n": 4, "kappa": 0.5, "observed": 0.75}]
    # Coincidences: n_approve 3, n_reject 5, n 8, disagreeing pairs 2 -> alpha = 1 - 7*2/(2*3*5) = 0.533.
    assert out["alpha"] == pytest.approx(0.533, abs=1e-3)
    assert out["units"] == 4


def test_agreement_with_consensus_uses_majority_then_adjudication():
    ds = factories.DatasetFactory(reviews_required=3)
    a, b, c = (factories.reviewer(username=n) for n in ("ann", "bob", "cid"))
    examples = _votes(ds, {a: ["approve", "approve", "reject"], b: ["approve", "reject", "reject"], c: ["approve", "reject", "approve"]})
    out = sel.review_agreement(dataset=ds)
    # Majorities: approve, reject, reject.
    assert out["per_reviewer"]["ann"] == {"n": 3, "agree": 2, "rate": 0.667}
    assert out["per_reviewer"]["bob"] == {"n": 3, "agree": 3, "rate": 1.0}
    assert out["per_reviewer"]["cid"] == {"n": 3, "agree": 2, "rate": 0.667}
    # An admin's adjudication overrides the majority.
    factories.ReviewFactory(example=examples[1], reviewer=factories.admin(), decision="approve", is_adjudication=True)
    out = sel.review_agreement(dataset=ds)
    assert out["per_reviewer"]["ann"]["agree"] == 3 and out["per_reviewer"]["bob"]["agree"] == 2
    assert out["adjudicated"] == 1


def test_undone_reviews_do_not_count_and_constant_votes_give_no_alpha():
    ds = factories.DatasetFactory(reviews_required=2)
    a, b = factories.reviewer(), factories.reviewer()
    examples = _votes(ds, {a: ["approve", "approve"], b: ["approve", "approve"]})
    factories.ReviewFactory(example=examples[0], reviewer=b, decision="reject", undone=True)
    out = sel.review_agreement(dataset=ds)
    assert out["alpha"] is None  # one value everywhere: undefined, not 1.0
    assert out["pairs"][0]["observed"] == 1.0 and out["pairs"][0]["kappa"] is None


def test_progress_and_dashboard():
    ds = factories.DatasetFactory(reviews_required=1)
    for status, n in ((Example.Status.PENDING_REVIEW, 2), (Example.Status.APPROVED, 3), (Example.Status.REJECTED, 1),
                      (Example.Status.IN_ADJUDICATION, 1), (Example.Status.FILTERED_OUT, 5)):
        factories.ExampleFactory.create_batch(n, dataset=ds, status=status)
    p = sel.review_progress(scope=sel.ReviewScope(dataset=ds))
    assert (p["total"], p["reviewed"], p["remaining"], p["approval_rate"]) == (7, 4, 3, 0.75)
    a = factories.reviewer(username="ann")
    factories.ReviewFactory(example=Example.objects.filter(status="approved").first(), reviewer=a, seconds_spent=10)
    factories.ReviewFactory(example=Example.objects.filter(status="approved").last(), reviewer=a, seconds_spent=20)
    dash = sel.review_dashboard()
    row = next(r for r in dash["reviewers"] if r["name"] == "ann")
    assert (row["count"], row["median_seconds"], row["per_hour"]) == (2, 15.0, 240)
    assert dash["datasets"][0]["percent"] == pytest.approx(100 * 4 / 7, abs=0.1)
    assert dash["in_adjudication"] == 1


def test_browse_filters_search_and_sort():
    ds = factories.DatasetFactory()
    expert = factories.GeneratedQueryFactory(variant=GeneratedQuery.Variant.EXPERT, domain="law",
                                             text="Which statute governs zebra crossings in Lisbon")
    hit = factories.ExampleFactory(dataset=ds, query=expert, prompt_versions={"rewrite": 2})
    miss = factories.ExampleFactory(dataset=ds, prompt_versions={"rewrite": 1})
    rev = factories.reviewer(username="ann")
    factories.ReviewFactory(example=miss, reviewer=rev, decision="reject")
    PromptTemplate.objects.create(name="rewrite", version=2, text="{q}")

    def ids(**f):
        return list(sel.example_browse(filters=f).values_list("pk", flat=True))

    assert ids(variant="expert") == [hit.pk]
    assert ids(domain="law") == [hit.pk]
    assert ids(prompt="rewrite:2") == [hit.pk]
    assert ids(prompt="rewrite:1") == [miss.pk]
    assert ids(decision="reject") == [miss.pk]
    assert ids(decision="reject", reviewer="nobody") == []
    assert ids(reviewer="ann") == [miss.pk]
    assert ids(q="zebra") == [hit.pk]
    assert ids(q="statute lisbon") == [hit.pk]
    assert ids(sort="-id", dataset=str(ds.pk)) == [miss.pk, hit.pk]
    assert "rewrite:2" in sel.browse_choices()["prompts"]


def test_data_quality_figures_and_charts():
    ds = factories.DatasetFactory()
    factories.ExampleFactory.create_batch(2, dataset=ds, status=Example.Status.APPROVED, prompt_versions={"positive": 1})
    factories.ExampleFactory(dataset=ds, status=Example.Status.REJECTED, prompt_versions={"positive": 1})
    factories.ExampleFactory(dataset=ds, status=Example.Status.REJECTED, prompt_versions={"positive": 2})
    figs = sel.data_quality_figures(dataset=ds)
    assert figs["domains"] == {"healthcare": 4}
    assert figs["variants"] == {"Daily life": 4}
    assert figs["approval_by_prompt"] == {"positive v1": {"approved": 2, "n": 3, "rate": 0.667},
                                          "positive v2": {"approved": 0, "n": 1, "rate": 0.0}}
    assert sorted(figs["passage_lengths"]) == ["positive"] and len(figs["passage_lengths"]["positive"]) == 4
    charts = review_charts.quality_charts(figs)
    assert len(charts) == 5 and all(c["svg"].startswith("<svg") for c in charts)
    assert review_charts.chart_bar(counts={}) == ""
    assert Review.objects.count() == 0
