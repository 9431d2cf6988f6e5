"""Generation runs through the service against the local server: the pipeline, the filter with
self-consistency, 20% injected faults, resume after a kill, the task's claim and enqueue on commit."""
from collections import Counter

import pytest

from curation.models import Example, GeneratedQuery, GenerationRun, LLMCall, Passage
from curation.services import generation
from curation.services.generation import generation_run_create, generation_run_execute, generation_run_resume
from curation.services.prompts import prompt_version_create
from limrank_app.jobs import JobStatus, job_claim
from tests import factories
from tests.curation.synth_helpers import llm_server, llm_settings, shared_pool  # noqa: F401

pytestmark = pytest.mark.django_db

KNOWN_REASONS = {"malformed JSON", "empty answer", "refusal", "no true/false answer", "no hard negatives in the answer",
                 "missing field 'daily_life'", "missing field 'expert'", "missing field 'passage'", "missing field 'hard_negatives'"}


def run_now(**kw) -> GenerationRun:
    run = generation_run_create(enqueue=False, **kw)
    assert job_claim(GenerationRun, pk=run.pk)
    run.refresh_from_db()
    return generation_run_execute(run=run)


def accounted(run: GenerationRun) -> int:
    s = run.stats
    return Example.objects.filter(generation_run=run).count() + s["duplicates"] + s["examples_missing"]


def assert_no_duplicates(run):
    keys = list(GeneratedQuery.objects.filter(generation_run=run).values_list("seed_id", "persona_id", "variant"))
    assert len(keys) == len(set(keys))
    per_query_kind = Counter(Passage.objects.filter(query__generation_run=run).values_list("query_id", "kind"))
    n_neg = run.params["n_hard_negatives"]
    assert all(n <= (1 if kind == "positive" else n_neg) for (_, kind), n in per_query_kind.items())
    passages = list(Example.objects.filter(generation_run=run).values_list("passage_id", flat=True))
    assert len(passages) == len(set(passages))
    # A stage that succeeded was never called again.
    ok_keys = Counter(LLMCall.objects.filter(generation_run=run, error="").exclude(purpose="reasoner").values_list("purpose", "item_key"))
    assert not [k for k, n in ok_keys.items() if n > 1]


def test_empty_run_succeeds_without_calls(llm_settings, llm_server):
    run = factories.GenerationRunFactory(params={"n_seeds": 0, "n_personas": 0})
    assert job_claim(GenerationRun, pk=run.pk)
    generation_run_execute(run=run)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and llm_server.counts["requests"] == 0 and LLMCall.objects.count() == 0


def test_pipeline_writes_queries_passages_examples_and_stats(llm_settings, llm_server, shared_pool):
    llm_server.disagree_rate = 0.3
    admin = factories.admin()
    dataset = factories.DatasetFactory()
    run = run_now(created_by=admin, dataset=dataset, n_seeds=2, n_personas=2, random_seed=7, in_flight=8, n_hard_negatives=2)
    assert run.status == JobStatus.SUCCEEDED
    assert run.progress_total == 2 * 2 * 2 * 3 and run.progress_done == run.progress_total
    assert GeneratedQuery.objects.filter(generation_run=run).count() == 8
    assert set(GeneratedQuery.objects.filter(generation_run=run).values_list("variant", flat=True)) == {"daily_life", "expert"}
    examples = Example.objects.filter(generation_run=run)
    assert accounted(run) == run.progress_total
    for ex in examples:
        assert ex.intended_label == (ex.passage.kind == Passage.Kind.POSITIVE)
        assert ex.dataset == dataset and ex.origin == "synthetic" and ex.reasoner_model == "deepseek-reasoner"
        assert ex.reasoning_trace.startswith("The query asks")
        assert set(ex.prompt_versions) == {"rewrite", ex.passage.kind, "reasoner"}
        if ex.reasoner_judgment == ex.intended_label:
            assert ex.status == "pending_review" and ex.filter_reason == ""
        else:
            assert ex.status == "filtered_out" and "intended" in ex.filter_reason
    s = run.stats
    assert s["kept"] == examples.filter(status="pending_review").count() > 0
    assert s["filtered"] == examples.filter(status="filtered_out").count() > 0  # 30% disagreement
    assert s["calls"] == LLMCall.objects.filter(generation_run=run).count() == llm_server.counts["requests"]
    assert s["tokens_in"] > 0 and s["cost_usd"] > 0
    assert s["cost_per_kept_usd"] == pytest.approx(s["cost_usd"] / s["kept"])
    assert_no_duplicates(run)
    # Sampling is reproducible from the random seed.
    again = generation_run_create(enqueue=False, n_seeds=2, n_personas=2, random_seed=7)
    assert (again.params["seed_ids"], again.params["persona_ids"]) == (run.params["seed_ids"], run.params["persona_ids"])


def test_self_consistency_majority(llm_settings, llm_server):
    llm_server.disagree_rate = 0.4
    factories.SeedQueryFactory.create_batch(2)
    factories.PersonaFactory.create_batch(2)
    run = run_now(n_seeds=2, n_personas=2, consistency_k=3, in_flight=16)
    # k votes for every judged passage: each example's, and a duplicate's when it was judged before it was found out
    # (two personas can rewrite a seed into the same expert query: which do depends on the factories' sequence
    # numbers, so on the tests run before, and when the twin is found on the order the concurrent calls finish).
    calls = LLMCall.objects.filter(generation_run=run, purpose="reasoner").count()
    examples = Example.objects.filter(generation_run=run).count()
    assert calls % 3 == 0 and 3 * examples <= calls <= 3 * (examples + run.stats["duplicates"]), (calls, examples, run.stats)
    for ex in Example.objects.filter(generation_run=run):
        assert len(ex.judgment_votes) == 3
        majority = Counter(ex.judgment_votes).most_common(1)[0][0]
        assert ex.reasoner_judgment == majority
        assert (ex.status == "pending_review") == (majority == ex.intended_label)
    assert Example.objects.filter(generation_run=run).exclude(judgment_votes=[True] * 3).exclude(judgment_votes=[False] * 3).exists()


def test_twenty_percent_faults_every_item_generated_or_failed_with_reason(llm_settings, llm_server, shared_pool):
    llm_server.fault_rate, llm_server.fault_seed = 0.2, 11
    run = run_now(n_seeds=4, n_personas=3, random_seed=3, in_flight=16)
    assert run.status == JobStatus.SUCCEEDED
    s = run.stats
    assert accounted(run) == run.progress_total == 4 * 3 * 2 * 3
    assert s["failed"] > 0 and sum(s["failure_reasons"].values()) == s["failed"]
    assert set(s["failure_reasons"]) <= KNOWN_REASONS, s["failure_reasons"]
    # Transient faults (429 with Retry-After, 500, slow past the timeout) were retried by the SDK and recovered.
    assert llm_server.counts["fault:429"] + llm_server.counts["fault:500"] + llm_server.counts["fault:slow"] > 0
    assert not LLMCall.objects.filter(generation_run=run, error__regex=r"^(rate limited|HTTP|timeout)").exists()
    # Reasoner failures stay visible as filtered-out examples with the reason.
    for ex in Example.objects.filter(generation_run=run, filter_reason__startswith="failed: "):
        assert ex.status == "filtered_out" and ex.reasoner_judgment is None
    assert_no_duplicates(run)


class Killed(BaseException):
    """Stands in for a worker killed mid-run (not an Exception: nothing in the service catches it)."""


def test_resume_after_kill_continues_without_duplicates(llm_settings, llm_server, shared_pool, monkeypatch):
    monkeypatch.setattr(generation, "PROGRESS_EVERY_S", 0.0)
    llm_server.latency = 0.02
    llm_server.fault_rate, llm_server.fault_seed = 0.1, 5
    run = generation_run_create(enqueue=False, n_seeds=3, n_personas=3, random_seed=9, in_flight=4)
    assert job_claim(GenerationRun, pk=run.pk)
    run.refresh_from_db()

    def kill_midway(done, total):
        if done >= total // 3:
            raise Killed

    with pytest.raises(Killed):
        generation_run_execute(run=run, progress=kill_midway)
    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING  # as a killed worker leaves it
    written_before = Example.objects.filter(generation_run=run).count()
    assert 0 < written_before < run.progress_total
    calls_before = LLMCall.objects.filter(generation_run=run).count()

    # The worker's lease ran out: another worker claims the run and carries on.
    assert job_claim(GenerationRun, pk=run.pk, lease_seconds=0)
    run.refresh_from_db()
    generation_run_execute(run=run)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.attempts == 2
    assert accounted(run) == run.progress_total
    assert LLMCall.objects.filter(generation_run=run).count() > calls_before
    assert_no_duplicates(run)

    # Running a finished run once more changes nothing.
    n_examples = Example.objects.count()
    generation_run_resume(run=run, enqueue=False)
    assert not job_claim(GenerationRun, pk=run.pk)
    assert Example.objects.count() == n_examples


def test_in_flight_cap_is_reached_and_never_exceeded(llm_settings, llm_server):
    """The run keeps exactly `in_flight` requests open at the endpoint while it has work for them."""
    llm_server.latency = 0.1
    factories.SeedQueryFactory.create_batch(4)
    factories.PersonaFactory.create_batch(3)
    run = run_now(n_seeds=4, n_personas=3, in_flight=6)
    assert run.status == JobStatus.SUCCEEDED and accounted(run) == run.progress_total, run.stats
    # One thread keeps 6 calls open at once (the endpoint saw exactly 6 at its peak, never 7).
    assert llm_server.max_in_flight == 6 and llm_server.in_flight == 0
    # Every pair's 11 calls, less the reasoner calls of passages whose pair was already there when they were written
    # (the local server answers deterministically, so two pairs can produce the same query-passage pair; one caught
    # only when its example is written still had its reasoner call): duplicates bound the difference.
    assert 12 * 11 - run.stats["duplicates"] <= run.stats["calls"] <= 12 * 11


def test_cancel_mid_run_stops_and_resume_finishes(llm_settings, llm_server, monkeypatch):
    monkeypatch.setattr(generation, "PROGRESS_EVERY_S", 0.0)
    llm_server.latency = 0.05
    factories.SeedQueryFactory.create_batch(3)
    factories.PersonaFactory.create_batch(3)
    run = generation_run_create(enqueue=False, n_seeds=3, n_personas=3, in_flight=4)
    assert job_claim(GenerationRun, pk=run.pk)
    run.refresh_from_db()

    def cancel_at_a_third(done, total):
        if done >= total // 3:
            generation.generation_run_cancel(run=GenerationRun.objects.get(pk=run.pk))

    generation_run_execute(run=run, progress=cancel_at_a_third)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    assert llm_server.in_flight == 0  # nothing left open
    # The calls that were open when the cancel came were written, not dropped.
    assert run.stats["calls"] == LLMCall.objects.filter(generation_run=run).count() == llm_server.counts["requests"]
    written = Example.objects.filter(generation_run=run).count()
    assert 0 < written < run.progress_total

    generation_run_resume(run=run, enqueue=False)
    assert job_claim(GenerationRun, pk=run.pk)
    run.refresh_from_db()
    generation_run_execute(run=run)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and accounted(run) == run.progress_total
    assert_no_duplicates(run)


def test_failed_run_resumes_from_where_it_stopped(llm_settings, llm_server):
    factories.SeedQueryFactory.create_batch(2)
    factories.PersonaFactory.create_batch(1)
    run = run_now(n_seeds=2, n_personas=1)
    first = Example.objects.filter(generation_run=run).count()
    GenerationRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED)
    run.refresh_from_db()
    generation_run_resume(run=run, enqueue=False)
    assert job_claim(GenerationRun, pk=run.pk)
    calls = llm_server.counts["requests"]
    generation_run_execute(run=run)
    assert llm_server.counts["requests"] == calls  # nothing left to do, nothing redone
    assert Example.objects.filter(generation_run=run).count() == first


def test_edited_prompt_is_used_and_recorded(llm_settings, llm_server):
    factories.SeedQueryFactory.create_batch(1)
    factories.PersonaFactory.create_batch(1)
    from curation.services.prompts import PROMPT_DEFAULTS, prompt_defaults_ensure

    assert len(prompt_defaults_ensure()) == 4
    v2 = prompt_version_create(name="reasoner", text="Careful now.\n" + PROMPT_DEFAULTS["reasoner"], notes="test")
    run = run_now(n_seeds=1, n_personas=1)
    assert run.params["prompt_versions"]["reasoner"] == v2.version == 2
    assert all(ex.prompt_versions["reasoner"] == 2 for ex in Example.objects.filter(generation_run=run))
    assert LLMCall.objects.filter(generation_run=run, purpose="reasoner", prompt=v2).exists()


def test_create_enqueues_on_commit_and_validates(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = generation_run_create(n_seeds=0, n_personas=0)
    assert len(callbacks) == 1 and run.status == JobStatus.QUEUED
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        generation_run_create(n_seeds=1, n_personas=1, in_flight=0, enqueue=False)
    with pytest.raises(ValidationError):
        generation_run_create(n_seeds=1, n_personas=1, consistency_k=99, enqueue=False)


def test_parsers():
    from curation.services.generation import ParseError, parse_hard_negatives, parse_rewrite, parse_verdict

    assert parse_rewrite('```json\n{"domain": "law", "daily_life": "a", "expert": "b"}\n```')["expert"] == "b"
    with pytest.raises(ParseError, match="malformed JSON"):
        parse_rewrite('{"domain": "law", "daily_life": "a')
    with pytest.raises(ParseError, match="missing field 'expert'"):
        parse_rewrite('{"daily_life": "a"}')
    assert len(parse_hard_negatives('{"hard_negatives": [{"passage": "x"}, {"passage": "y"}, {"passage": "z"}]}', n=2)) == 2
    assert parse_verdict("It mentions true facts but overall: false") is False
    with pytest.raises(ParseError):
        parse_verdict("maybe")
