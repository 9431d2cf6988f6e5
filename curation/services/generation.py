"""Generation runs of the LimRank-Synthesizer: seeds x personas -> rewritten queries (daily-life and expert)
-> a positive and hard-negative passages per query -> the reasoner's trace and judgment (k samples,
majority) -> the filter (keep when the judgment equals the intended label).

Execution model: one thread. Up to `in_flight` LLM calls are open at once as asyncio tasks on an event loop
that the calling thread drives (openai's AsyncOpenAI through `LLMClient.acomplete`); the tasks only talk HTTP
and parse answers, and a finished task's slot is refilled at once from the plan. Between turns of the loop
the same thread writes what has finished, one transaction per batch, so a run is consistent at every commit,
SQLite sees a single writer, and the ORM never runs inside the loop. No thread pool: 32+ HTTP threads and a
writer on one GIL pay thread switches and lock hand-offs on every call, and the CPU per call is what limits
a run's calls/s on a small machine (bench/RESULTS.md).

Idempotent resume: what a run has written is its state. Queries are unique per (run, seed, persona,
variant); examples are unique by content hash; a stage whose last call failed (an LLMCall row with an
error and the stage's item key) is not retried. Running `generation_run_execute` again on a claimed
run (a redelivered task, a resumed run) carries on where the last one stopped and never duplicates.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Callable, Iterator

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum

from curation.generation_params import GenerationParams
from curation.hashing import example_content_hash, text_hash
from curation.llm import LLMCallError, LLMClient, llm_endpoint, record_later
from curation.models import (
    Dataset, Example, GeneratedQuery, GenerationRun, LLMCall, Passage, Persona, PromptTemplate, SeedQuery,
)
from curation.services.prompts import prompt_active, prompt_render
from limrank_app.jobs import JobStatus, job_cancel, job_enqueue_on_commit, job_finish, job_progress, job_resume

log = logging.getLogger(__name__)

Name = PromptTemplate.Name
VARIANTS = (GeneratedQuery.Variant.DAILY_LIFE, GeneratedQuery.Variant.EXPERT)
FAILED_PREFIX = "failed: "
PROGRESS_EVERY_S = 1.0
BATCH_WINDOW_S = 0.02  # at most this long between a finished call and its batch's commit


# ---------------------------------------------------------------- creating, resuming, cancelling


def _sample(ids: list[int], n: int, rng: random.Random) -> list[int]:
    return sorted(rng.sample(ids, min(n, len(ids)))) if n > 0 else []


def generation_run_create(
    *,
    created_by=None,
    name: str = "",
    dataset: Dataset | None = None,
    params: GenerationParams | None = None,
    seed_ids: list[int] | None = None,
    persona_ids: list[int] | None = None,
    enqueue: bool = True,
    **values,
) -> GenerationRun:
    """Sample seeds and personas (reproducibly, from `random_seed`), freeze the active prompt versions,
    save the run and enqueue it on the `llm` queue after commit (unless `enqueue=False`, as the
    foreground `synthesize` command does). The run's parameters are `params`, or built from keyword
    `values` (GenerationParams' fields; a bad or unknown one is a ValidationError naming the field)."""
    if params is None:
        params = GenerationParams.build(**values)
    elif values:
        raise ValidationError("give either params or keyword values, not both")
    rng = random.Random(params.random_seed)
    if seed_ids is None:
        seed_ids = _sample(list(SeedQuery.objects.order_by("id").values_list("id", flat=True)), params.n_seeds, rng)
    if persona_ids is None:
        persona_ids = _sample(list(Persona.objects.order_by("id").values_list("id", flat=True)), params.n_personas, rng)
    prompts = {n: prompt_active(name=n) for n in Name.values}
    resolved = replace(params, generator_model=params.generator_model or settings.LIMRANK_GENERATOR_MODEL,
                       reasoner_model=params.reasoner_model or settings.LIMRANK_REASONER_MODEL,
                       n_seeds=len(seed_ids), n_personas=len(persona_ids))
    params = {
        **resolved.to_dict(),
        "n_seeds_requested": params.n_seeds, "n_personas_requested": params.n_personas,
        "seed_ids": seed_ids, "persona_ids": persona_ids,
        "prompt_ids": {n: p.pk for n, p in prompts.items()},
        "prompt_versions": {n: p.version for n, p in prompts.items()},
    }
    run = GenerationRun(name=name, dataset=dataset, params=params, created_by=created_by)
    run.progress_total = _expected_examples(params)
    run.full_clean()
    run.save()
    if enqueue:
        _enqueue_on_commit(run.pk)
    return run


def _enqueue_on_commit(run_id: int) -> None:
    job_enqueue_on_commit(GenerationRun, pk=run_id)


def _expected_examples(params: dict) -> int:
    pairs = len(params.get("seed_ids") or []) * len(params.get("persona_ids") or [])
    return pairs * len(VARIANTS) * (1 + GenerationParams.from_stored(params).n_hard_negatives)


@transaction.atomic
def generation_run_resume(*, run: GenerationRun, enqueue: bool = True) -> GenerationRun:
    """Give a failed, cancelled, stuck-queued or abandoned run another go: it continues from what it wrote."""
    job_resume(run, enqueue=enqueue)
    return run


def generation_run_cancel(*, run: GenerationRun) -> GenerationRun:
    job_cancel(run)
    return run


# ---------------------------------------------------------------- parsing answers


class ParseError(Exception):
    """An answer in the wrong format; the message is the failure reason."""


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_VERDICT = re.compile(r"\b(true|false)\b", re.I)


def _json_answer(text: str) -> dict:
    text = text.strip()
    m = _FENCE.match(text)
    if m:
        text = m.group(1)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        # Some models wrap the object in prose: take the outermost braces.
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise ParseError("malformed JSON") from None
        try:
            obj = json.loads(text[start : end + 1])
        except json.JSONDecodeError:
            raise ParseError("malformed JSON") from None
    if not isinstance(obj, dict):
        raise ParseError("malformed JSON (not an object)")
    return obj


def _str_field(obj: dict, key: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if required:
        raise ParseError(f"missing field '{key}'")
    return ""


def parse_rewrite(text: str) -> dict:
    obj = _json_answer(text)
    return {"domain": _str_field(obj, "domain", required=False)[:64], "daily_life": _str_field(obj, "daily_life"), "expert": _str_field(obj, "expert")}


def parse_positive(text: str) -> dict:
    obj = _json_answer(text)
    return {"title": _str_field(obj, "title", required=False)[:500], "passage": _str_field(obj, "passage")}


def parse_hard_negatives(text: str, *, n: int) -> list[dict]:
    obj = _json_answer(text)
    items = obj.get("hard_negatives")
    if not isinstance(items, list):
        raise ParseError("missing field 'hard_negatives'")
    out = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("passage"), str) and item["passage"].strip():
            out.append({"title": str(item.get("title") or "")[:500].strip(), "passage": item["passage"].strip()})
    if not out:
        raise ParseError("no hard negatives in the answer")
    return out[:n]


def parse_verdict(text: str) -> bool:
    """The last true/false in the answer (after the reasoning)."""
    found = _VERDICT.findall(text or "")
    if not found:
        raise ParseError("no true/false answer")
    return found[-1].lower() == "true"


# ---------------------------------------------------------------- the run's state in the database


def _pair_key(seed_id: int, persona_id: int) -> str:
    return f"s{seed_id}-p{persona_id}"


def _query_key(query: GeneratedQuery) -> str:
    return f"s{query.seed_id}-p{query.persona_id}-{query.variant}"


def _passage_key(passage_id: int) -> str:
    return f"psg{passage_id}"


def _example_hash(query: GeneratedQuery, passage: Passage) -> str:
    return example_content_hash(query=query.text, passage=f"{passage.title} {passage.text}".strip(), label=passage.kind == Passage.Kind.POSITIVE)


@dataclass
class RunState:
    """What a run has written: loaded at the start (resume) and for the summary."""

    queries: dict[tuple[int, int, str], GeneratedQuery] = field(default_factory=dict)
    passages: dict[int, dict[str, list[Passage]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    examples: dict[int, tuple[str, str]] = field(default_factory=dict)  # passage id -> (status, filter_reason)
    duplicates: set[int] = field(default_factory=set)  # passage ids whose example already exists elsewhere
    failed_calls: dict[tuple[str, str], str] = field(default_factory=dict)  # (purpose, item key) -> error

    @classmethod
    def load(cls, run: GenerationRun) -> "RunState":
        state = cls()
        for q in GeneratedQuery.objects.filter(generation_run=run):
            state.queries[(q.seed_id, q.persona_id, q.variant)] = q
        by_id = {q.pk: q for q in state.queries.values()}
        for p in Passage.objects.filter(query__generation_run=run).order_by("id"):
            state.passages[p.query_id][p.kind].append(p)
        for pid, status, reason in Example.objects.filter(generation_run=run).values_list("passage_id", "status", "filter_reason"):
            state.examples[pid] = (status, reason)
        waiting = defaultdict(list)  # hash -> passages without an example (several when a pair came back twice)
        for kinds in state.passages.values():
            for plist in kinds.values():
                for p in plist:
                    if p.pk not in state.examples:
                        waiting[_example_hash(by_id[p.query_id], p)].append(p.pk)
        hashes = list(waiting)
        for i in range(0, len(hashes), 900):
            for h in Example.objects.filter(content_hash__in=hashes[i : i + 900]).values_list("content_hash", flat=True):
                state.duplicates.update(waiting[h])
        for purpose, key, error in LLMCall.objects.filter(generation_run=run).exclude(error="").values_list("purpose", "item_key", "error"):
            state.failed_calls[(purpose, key)] = error
        return state

    def stage_failure(self, purpose: str, key: str) -> str | None:
        error = self.failed_calls.get((purpose, key))
        return error.split(":", 1)[0] if error else None


def generation_run_stats(*, run: GenerationRun, state: RunState | None = None) -> dict:
    """The run's summary from the database: calls, tokens, cost, kept / filtered / failed, cost per kept example."""
    state = state or RunState.load(run)
    params = run.params or {}
    n_neg = GenerationParams.from_stored(params).n_hard_negatives
    agg = LLMCall.objects.filter(generation_run=run).aggregate(
        calls=Count("id"), errors=Count("id", filter=~Q(error="")), tokens_in=Sum("tokens_in"),
        tokens_out=Sum("tokens_out"), cost=Sum("cost_usd"),
    )
    by_role = dict(LLMCall.objects.filter(generation_run=run).values_list("role").annotate(n=Count("id")))
    call_errors = Counter(
        e.split(":", 1)[0] for e in LLMCall.objects.filter(generation_run=run).exclude(error="").values_list("error", flat=True)
    )
    kept = filtered = 0
    failed = Counter()  # stage -> work items that failed
    reasons = Counter()  # reason -> failed work items
    for status, reason in state.examples.values():
        if reason.startswith(FAILED_PREFIX):
            failed["reasoner"] += 1
            reasons[reason[len(FAILED_PREFIX):].split(":", 1)[0]] += 1
        elif reason:
            filtered += 1
        else:
            kept += 1
    lost = 0  # examples that will never exist because an earlier stage failed
    for seed_id in params.get("seed_ids") or []:
        for persona_id in params.get("persona_ids") or []:
            qs = [state.queries.get((seed_id, persona_id, v)) for v in VARIANTS]
            if not any(qs):
                why = state.stage_failure(Name.REWRITE, _pair_key(seed_id, persona_id))
                if why:
                    failed["rewrite"] += 1
                    reasons[why] += 1
                    lost += len(VARIANTS) * (1 + n_neg)
                continue
            for q in filter(None, qs):
                for purpose, kind, count in ((Name.POSITIVE, Passage.Kind.POSITIVE, 1), (Name.HARD_NEGATIVE, Passage.Kind.HARD_NEGATIVE, n_neg)):
                    have = state.passages.get(q.pk, {}).get(kind, [])
                    if not have:
                        why = state.stage_failure(purpose, _query_key(q))
                        if why:
                            failed[purpose] += 1
                            reasons[why] += 1
                            lost += count
                    else:
                        lost += max(0, count - len(have))  # fewer hard negatives than asked
    cost = agg["cost"] or Decimal("0")
    total_failed = sum(failed.values())
    return {
        "calls": agg["calls"], "calls_generator": by_role.get("generator", 0), "calls_reasoner": by_role.get("reasoner", 0),
        "call_errors": agg["errors"], "call_errors_by_reason": dict(call_errors),
        "tokens_in": agg["tokens_in"] or 0, "tokens_out": agg["tokens_out"] or 0,
        "cost_usd": float(cost), "kept": kept, "filtered": filtered, "failed": total_failed,
        "failed_by_stage": dict(failed), "failure_reasons": dict(reasons), "duplicates": len(state.duplicates),
        "queries": len(state.queries), "passages": sum(len(x) for k in state.passages.values() for x in k.values()),
        "examples_missing": lost,
        "cost_per_kept_usd": float(cost / kept) if kept else None,
    }


# ---------------------------------------------------------------- execution


@dataclass
class Unit:
    """One LLM call of the run."""

    purpose: str  # rewrite | positive | hard_negative | reasoner
    key: str
    ctx: dict
    sample: int = 0


@dataclass
class Outcome:
    unit: Unit
    record: LLMCall | None
    value: object = None
    reasoning: str = ""
    error: str = ""  # short reason when the call failed


class _Executor:
    def __init__(self, run: GenerationRun, progress: Callable[[int, int], None] | None):
        self.run = run
        self.progress_cb = progress
        p = run.params
        typed = GenerationParams.from_stored(p)
        self.k = typed.consistency_k
        self.n_neg = typed.n_hard_negatives
        self.in_flight = typed.in_flight
        self.temperature = typed.temperature
        self.reasoner_temperature = typed.reasoner_temperature
        self.prompts = self._prompts(p)
        self.seeds = SeedQuery.objects.in_bulk(p.get("seed_ids") or [])
        self.personas = Persona.objects.in_bulk(p.get("persona_ids") or [])
        self.total = _expected_examples(p)
        self.done = 0
        self.follow_ups: deque[Unit] = deque()
        self.votes: dict[int, dict] = {}  # passage id -> collected reasoner samples
        self.cancelled = False

    def _prompts(self, params: dict) -> dict[str, PromptTemplate]:
        ids = params.get("prompt_ids") or {}
        found = PromptTemplate.objects.in_bulk([i for i in ids.values() if i])
        prompts = {}
        for name in Name.values:
            prompts[name] = found.get(ids.get(name)) or prompt_active(name=name)
        if {n: p.pk for n, p in prompts.items()} != ids:  # freeze them, so a resume uses the same versions
            params["prompt_ids"] = {n: p.pk for n, p in prompts.items()}
            params["prompt_versions"] = {n: p.version for n, p in prompts.items()}
            GenerationRun.objects.filter(pk=self.run.pk).update(params=params)
        return prompts

    # ---- planning

    def _plan(self, state: RunState) -> Iterator[Unit]:
        """The calls still to make, pair by pair, skipping what the run already wrote or failed."""
        for seed_id in self.run.params.get("seed_ids") or []:
            seed = self.seeds.get(seed_id)
            for persona_id in self.run.params.get("persona_ids") or []:
                persona = self.personas.get(persona_id)
                if seed is None or persona is None:  # deleted since the run was made
                    self.done += len(VARIANTS) * (1 + self.n_neg)
                    continue
                queries = [state.queries.get((seed_id, persona_id, v)) for v in VARIANTS]
                if not any(queries):
                    if state.stage_failure(Name.REWRITE, _pair_key(seed_id, persona_id)):
                        self.done += len(VARIANTS) * (1 + self.n_neg)
                    else:
                        yield Unit(Name.REWRITE, _pair_key(seed_id, persona_id), {"seed": seed, "persona": persona})
                    continue
                for q in filter(None, queries):
                    yield from self._plan_query(q, state)

    def _plan_query(self, q: GeneratedQuery, state: RunState) -> Iterator[Unit]:
        for purpose, kind, count in ((Name.POSITIVE, Passage.Kind.POSITIVE, 1), (Name.HARD_NEGATIVE, Passage.Kind.HARD_NEGATIVE, self.n_neg)):
            have = state.passages.get(q.pk, {}).get(kind, [])
            if not have:
                if state.stage_failure(purpose, _query_key(q)):
                    self.done += count
                else:
                    yield Unit(purpose, _query_key(q), {"query": q})
                continue
            self.done += max(0, count - len(have))
            for passage in have:
                if passage.pk in state.examples or passage.pk in state.duplicates:
                    self.done += 1
                else:
                    yield from self._reasoner_units(q, passage)

    def _reasoner_units(self, q: GeneratedQuery, passage: Passage) -> list[Unit]:
        self.votes[passage.pk] = {"query": q, "passage": passage, "results": []}
        return [Unit(Name.REASONER, _passage_key(passage.pk), {"query": q, "passage": passage}, sample=i) for i in range(self.k)]

    # ---- calling (tasks on the run's event loop: HTTP and parsing, no database)

    async def _call(self, unit: Unit) -> Outcome:
        try:
            if unit.purpose == Name.REWRITE:
                seed, persona = unit.ctx["seed"], unit.ctx["persona"]
                text = prompt_render(template=self.prompts[Name.REWRITE], persona=persona.text, seed_query=seed.text)
                reply = await self._complete(self.generator, unit, text, self.temperature)
                return self._parsed(unit, reply, parse_rewrite)
            if unit.purpose in (Name.POSITIVE, Name.HARD_NEGATIVE):
                q = unit.ctx["query"]
                fields = {"query": q.text, "domain": q.domain or "general", "n_negatives": self.n_neg}
                text = prompt_render(template=self.prompts[unit.purpose], **fields)
                reply = await self._complete(self.generator, unit, text, self.temperature)
                parser = parse_positive if unit.purpose == Name.POSITIVE else (lambda t: parse_hard_negatives(t, n=self.n_neg))
                return self._parsed(unit, reply, parser)
            q, passage = unit.ctx["query"], unit.ctx["passage"]
            query_text = f"{q.text} {q.instruction}".strip()
            passage_text = f"{passage.title} {passage.text}".strip()
            text = prompt_render(template=self.prompts[Name.REASONER], query=query_text, passage=passage_text)
            reply = await self._complete(self.reasoner, unit, text, self.reasoner_temperature, seed=unit.sample if self.k > 1 else None)
            return self._parsed(unit, reply, parse_verdict)
        except LLMCallError as exc:
            return Outcome(unit, exc.record, error=exc.reason)
        except Exception as exc:  # keep the run going; the reason names the surprise
            log.exception("unexpected error in %s %s", unit.purpose, unit.key)
            return Outcome(unit, None, error=f"unexpected error ({type(exc).__name__})")

    def _complete(self, client: LLMClient, unit: Unit, text: str, temperature, seed=None):
        return client.acomplete(
            messages=[{"role": "user", "content": text}], purpose=unit.purpose, item_key=unit.key, run=self.run,
            prompt=self.prompts[unit.purpose], temperature=temperature, seed=seed,
        )

    @staticmethod
    def _parsed(unit: Unit, reply, parser) -> Outcome:
        try:
            value = parser(reply.content)
        except ParseError as exc:
            reply.record.error = f"{exc}: {reply.content[:300]}"
            return Outcome(unit, reply.record, error=str(exc))
        return Outcome(unit, reply.record, value=value, reasoning=reply.reasoning)

    # ---- writing (the calling thread only, one transaction per batch of finished calls, few statements)

    def _apply_batch(self, outcomes: list[Outcome]) -> None:
        rewrites = [o for o in outcomes if o.unit.purpose == Name.REWRITE]
        passages = [o for o in outcomes if o.unit.purpose in (Name.POSITIVE, Name.HARD_NEGATIVE)]
        votes = [o for o in outcomes if o.unit.purpose == Name.REASONER]
        self._apply_rewrites(rewrites)
        self._apply_passages(passages)
        examples = [e for e in (self._apply_vote(o) for o in votes) if e is not None]
        # ignore_conflicts: the same pair written meanwhile (another run) is skipped, never stored twice.
        Example.objects.bulk_create(examples, ignore_conflicts=True)
        LLMCall.objects.bulk_create([o.record for o in outcomes if o.record is not None])

    def _apply_rewrites(self, outcomes: list[Outcome]) -> None:
        rows = []
        for out in outcomes:
            if out.error:
                self.done += len(VARIANTS) * (1 + self.n_neg)
                continue
            seed, persona = out.unit.ctx["seed"], out.unit.ctx["persona"]
            rows += [GeneratedQuery(
                seed=seed, persona=persona, variant=variant, domain=out.value["domain"], text=out.value[variant],
                generation_run=self.run, prompt=self.prompts[Name.REWRITE], text_hash=text_hash(out.value[variant]),
            ) for variant in VARIANTS]
        if not rows:
            return
        try:
            with transaction.atomic():
                queries = GeneratedQuery.objects.bulk_create(rows)
        except IntegrityError:  # some were written by an earlier attempt of this run: one by one
            queries = [
                GeneratedQuery.objects.get_or_create(
                    generation_run=self.run, seed=r.seed, persona=r.persona, variant=r.variant,
                    defaults={"domain": r.domain, "text": r.text, "prompt": r.prompt, "text_hash": r.text_hash},
                )[0]
                for r in rows
            ]
        for q in queries:
            for purpose in (Name.POSITIVE, Name.HARD_NEGATIVE):
                self.follow_ups.append(Unit(purpose, _query_key(q), {"query": q}))

    def _apply_passages(self, outcomes: list[Outcome]) -> None:
        rows = []
        for out in outcomes:
            positive = out.unit.purpose == Name.POSITIVE
            count = 1 if positive else self.n_neg
            if out.error:
                self.done += count
                continue
            items = [out.value] if positive else out.value
            self.done += count - len(items)
            kind = Passage.Kind.POSITIVE if positive else Passage.Kind.HARD_NEGATIVE
            rows += [Passage(title=i["title"], text=i["passage"], kind=kind, source="synthetic", query=out.unit.ctx["query"],
                             prompt=self.prompts[out.unit.purpose], text_hash=text_hash(i["passage"])) for i in items]
        if not rows:
            return
        created = Passage.objects.bulk_create(rows)
        hashes = {p.pk: _example_hash(p.query, p) for p in created}
        existing = set(Example.objects.filter(content_hash__in=list(hashes.values())).values_list("content_hash", flat=True))
        seen = set()
        for passage in created:
            h = hashes[passage.pk]
            if h in existing or h in seen:
                self.done += 1  # the same pair exists already (another run, or twice in this batch): never twice
                continue
            seen.add(h)
            self.follow_ups.extend(self._reasoner_units(passage.query, passage))

    def _apply_vote(self, out: Outcome) -> Example | None:
        passage = out.unit.ctx["passage"]
        slot = self.votes[passage.pk]
        slot["results"].append(out)
        if len(slot["results"]) < self.k:
            return None
        del self.votes[passage.pk]
        self.done += 1
        return self._example(slot["query"], passage, sorted(slot["results"], key=lambda o: o.unit.sample))

    def _example(self, q: GeneratedQuery, passage: Passage, results: list[Outcome]) -> Example:
        intended = passage.kind == Passage.Kind.POSITIVE
        votes = [None if r.error else bool(r.value) for r in results]
        n_true, n_false = votes.count(True), votes.count(False)
        judgment, trace = None, ""
        if n_true + n_false == 0:
            reasons = Counter(r.error for r in results)
            filter_reason = f"{FAILED_PREFIX}{reasons.most_common(1)[0][0]}"
        elif n_true == n_false:
            filter_reason = f"reasoner split {n_true} true / {n_false} false"
            trace = next(r.reasoning for r in results if not r.error)
        else:
            judgment = n_true > n_false
            trace = next(r.reasoning for r in results if not r.error and bool(r.value) == judgment)
            tally = f" ({n_true} true / {n_false} false of {self.k})" if self.k > 1 else ""
            filter_reason = "" if judgment == intended else (
                f"reasoner judged {'relevant' if judgment else 'not relevant'}{tally}; intended {'relevant' if intended else 'not relevant'}"
            )
        kind_prompt = Name.POSITIVE if intended else Name.HARD_NEGATIVE
        return Example(
            dataset=self.run.dataset, query=q, passage=passage, intended_label=intended, reasoning_trace=trace,
            reasoner_judgment=judgment, judgment_votes=votes, origin=Example.Origin.SYNTHETIC,
            status=Example.Status.FILTERED_OUT if filter_reason else Example.Status.PENDING_REVIEW,
            filter_reason=filter_reason[:200], generation_run=self.run,
            prompt_versions={n: self.prompts[n].version for n in (Name.REWRITE, kind_prompt, Name.REASONER)},
            reasoner_model=self.reasoner.endpoint.model[:200], content_hash=_example_hash(q, passage),
        )

    # ---- the loop

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < PROGRESS_EVERY_S:
            return
        self._last_report = now
        if not job_progress(self.run, done=min(self.done, self.total), total=self.total):
            self.cancelled = True
        if self.progress_cb:
            self.progress_cb(min(self.done, self.total), self.total)

    def _fill(self) -> None:
        """Keep `in_flight` calls open: follow-ups first (they finish examples), then new pairs from the plan.
        At most `in_flight` tasks exist, so at most `in_flight` requests are open (the cap on the endpoint)."""
        while not self.cancelled and not self._closing and len(self._tasks) < self.in_flight:
            if self.follow_ups:
                unit = self.follow_ups.popleft()
            elif not self._exhausted:
                unit = next(self._plan_iter, None)
                if unit is None:
                    self._exhausted = True
                    continue
            else:
                break
            task = self._loop.create_task(self._call(unit))
            task.add_done_callback(self._done)
            self._tasks.add(task)

    def _done(self, task: asyncio.Task) -> None:
        """A call finished (in the loop): keep its outcome for the next write and give its slot to the next
        unit of the plan at once; new pairs need nothing from the write."""
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is not None:  # shutting down (_call itself never raises)
            return
        self._finished.append(task.result())
        self._fill()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _arrival(self, timeout: float) -> None:
        """Sleep until a call finishes or `timeout` passes."""
        self._waiter = waiter = self._loop.create_future()
        timer = self._loop.call_later(timeout, lambda: waiter.done() or waiter.set_result(None))
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _collect(self, last_write: float) -> None:
        """Run the calls until there is something to write: the first answer, then more for up to
        BATCH_WINDOW_S after the last write (fewer, larger transactions) while calls are still open."""
        if not self._finished:
            await self._arrival(PROGRESS_EVERY_S)
            if not self._finished:
                return
        deadline = last_write + BATCH_WINDOW_S
        while self._tasks and (left := deadline - time.monotonic()) > 0:
            await self._arrival(left)

    async def _shutdown(self) -> None:
        """Cancel what is still open (only after an error: a finished run has nothing open) and close the clients."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.generator.aclose()
        await self.reasoner.aclose()

    def execute(self) -> str:
        if self.total == 0:  # nothing sampled: done, without a single call
            self._last_report = 0.0
            self._report(force=True)
            return JobStatus.CANCELLED if self.cancelled else JobStatus.SUCCEEDED
        state = RunState.load(self.run)
        self._plan_iter = self._plan(state)
        self._exhausted = self._closing = False
        self._last_report = 0.0
        endpoint_kwargs = {"recorder": record_later, "max_connections": self.in_flight}
        self.generator = LLMClient(llm_endpoint("generator", model=self.run.params.get("generator_model")), **endpoint_kwargs)
        self.reasoner = LLMClient(llm_endpoint("reasoner", model=self.run.params.get("reasoner_model")), **endpoint_kwargs)
        self._tasks: set[asyncio.Task] = set()
        self._finished: list[Outcome] = []
        self._waiter: asyncio.Future | None = None
        # The loop runs only inside run_until_complete; the writes happen between its turns, where Django
        # allows the ORM (no running loop in this thread). Answers that arrive meanwhile wait in their sockets
        # for the few milliseconds of a batch (a write would have to outlast the request timeout to matter).
        self._loop = loop = asyncio.new_event_loop()
        last_write = time.monotonic()
        try:
            while True:
                self._fill()
                if not self._tasks and not self._finished:
                    break
                loop.run_until_complete(self._collect(last_write))
                if self._finished:
                    outcomes, self._finished = self._finished, []
                    with transaction.atomic():
                        self._apply_batch(outcomes)
                    last_write = time.monotonic()
                self._report()
        finally:
            self._closing = True
            try:
                loop.run_until_complete(self._shutdown())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
        self._report(force=True)
        return JobStatus.CANCELLED if self.cancelled else JobStatus.SUCCEEDED


def generation_run_execute(*, run: GenerationRun, progress: Callable[[int, int], None] | None = None) -> GenerationRun:
    """Do (or carry on with) a claimed run; the caller has claimed it with `job_claim`.
    Per-item failures are recorded and do not fail the run; an unexpected error fails it (resumable)."""
    try:
        if "seed_ids" not in run.params or "persona_ids" not in run.params:
            _sample_missing(run)
        status = _Executor(run, progress).execute()
    except Exception as exc:
        run.refresh_from_db()
        job_finish(run, status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], stats=generation_run_stats(run=run))
        raise
    run.refresh_from_db()
    job_finish(run, status=status, stats=generation_run_stats(run=run), progress_done=run.progress_total if status == JobStatus.SUCCEEDED else run.progress_done)
    return run


def _sample_missing(run: GenerationRun) -> None:
    """A run made without the create service (e.g. only n_seeds / n_personas in params): sample now, once."""
    params = dict(run.params or {})
    typed = GenerationParams.from_stored(params)
    rng = random.Random(typed.random_seed)
    if "seed_ids" not in params:
        params["seed_ids"] = _sample(list(SeedQuery.objects.order_by("id").values_list("id", flat=True)),
                                     typed.n_seeds if "n_seeds" in params else 0, rng)
    if "persona_ids" not in params:
        params["persona_ids"] = _sample(list(Persona.objects.order_by("id").values_list("id", flat=True)),
                                        typed.n_personas if "n_personas" in params else 0, rng)
    run.params = params
    run.progress_total = _expected_examples(params)
    GenerationRun.objects.filter(pk=run.pk).update(params=params, progress_total=run.progress_total)
