"""The demo that ships: ~30 personas, ~30 seed queries, ~50 complete examples, written for the studio (no licensed data).

Files (in `curation/demo/`, one JSON object per line):
- personas.jsonl  {"persona", "domain"}; an example's persona_index is the 0-based line among the personas.
- seeds.jsonl     {"id", "query"}
- examples.jsonl  {"seed_id", "persona_index" (null only for variant "original"), "variant", "domain", "query",
                   "passage_title", "passage", "kind", "label", "reasoning", "judgment"}
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from curation.hashing import example_content_hash, text_hash
from curation.models import Dataset, Example, GeneratedQuery, Passage, Persona, SeedQuery
from limrank_app.roles import ADMIN, REVIEWER, user_role_set

DEMO_USERS = {"demo-admin": ADMIN, "demo-reviewer": REVIEWER}


@transaction.atomic
def demo_users_ensure() -> tuple[str, bool]:
    """Create (or reset the password of) the demo users. Returns (password, generated?)."""
    password = os.environ.get("LIMRANK_DEMO_PASSWORD")
    generated = not password
    if generated:
        password = secrets.token_urlsafe(12)
    User = get_user_model()
    for username, role in DEMO_USERS.items():
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(password)
        user.save()
        user_role_set(user, role)
    return password, generated


DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
DEMO_DATASET_NAME = "demo"
DEMO_SOURCE = "demo"
DEMO_PROMPT_VERSIONS = {"demo": 1}
DEMO_REASONER = "hand-written (demo)"

DEMO_DATASET_DESCRIPTION = (
    "Hand-written LimRank-style examples that ship with the studio: persona-based daily-life and expert "
    "rewrites of short web queries, positive and hard-negative passages, a reasoning trace and a true/false "
    "judgment. Original texts, CC BY 4.0 (see curation/demo/LICENSE-DEMO.md)."
)

DEMO_GUIDELINES = """\
## What you are checking

Each example pairs a **query** with a **passage** and a **reasoning trace** that ends in a judgment
(*relevant* or *not relevant*). The example also carries the label the generator intended: positives were
written to answer the query, hard negatives to look related without answering it.
Approve an example only when all of it is good training data.

## What "relevant" means

A passage is **relevant** when a person who asked this query, in the situation the query describes, would
get their answer from the passage, possibly after a short inference that the passage supports.
Sharing the topic or the words is not enough.

- Read the **whole** query: the entity (sodium is not potassium), the time or place (California, after 1978),
  the scope (one cow, not the bulk tank) and the constraint (*on hot days*, *for 14-year-olds*).
- A passage that answers the query **and** adds extra material is still relevant.
- A passage that supplies only background, a neighbouring fact, or a different case of the same rule is
  **not** relevant, however close it looks: that is what a hard negative is for.
- Borderline cases exist. Decide what most people asking this query would accept, and say why in the note.

## Approve when

- the query is something a real person would ask, in their own voice;
- the passage is accurate and the intended label (positive / hard negative) is right for this query;
- the reasoning trace reasons about *this* query and passage and reaches the right judgment.

If a small fix makes the example right (a wrong number, a sentence of the trace), edit it and approve.

## Reject reasons (keys 1-5 on the workbench)

1. **Passage doesn't answer** (the label is wrong): a "positive" that does not answer the query, or a
   "hard negative" that in fact does.
2. **Query unrealistic**: nobody would ask this, or not in these words, this situation or this persona's voice.
3. **Factual error**: the passage (or the trace) states something false, or is too poor to train on.
4. **Reasoning trace wrong**: the trace misreads the query or passage, skips the decisive step, or its
   judgment does not follow from what it says.
5. **Other**: a duplicate or anything else; describe it in the note.

Examples the reasoner disagreed with (judgment differs from the intended label) are filtered out before review;
they stay visible under *filtered out* for checking how the automatic filter behaves.
"""


class DemoDataError(ValueError):
    """A demo file that cannot be loaded; names the file, the line (1-based) and the field."""

    def __init__(self, *, file: Path | str, line: int, field: str, message: str):
        self.file, self.line, self.field = str(file), line, field
        where = f"line {line}" if line else "file"
        super().__init__(f"{self.file}, {where}, field '{field}': {message}")


# Field checkers: return the cleaned value or raise ValueError with what is wrong.
def _text(max_length: int | None = None, *, allow_empty: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {type(value).__name__}")
        value = value.strip()
        if not value and not allow_empty:
            raise ValueError("must not be empty")
        if max_length and len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters, got {len(value)}")
        return value

    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {json.dumps(value)}")
    return value


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {json.dumps(value)}")
        return value

    return check


def _index_or_null(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a non-negative integer or null, got {json.dumps(value)}")
    return value


PERSONA_FIELDS = {"persona": _text(), "domain": _text(64)}
SEED_FIELDS = {"id": _text(64), "query": _text()}
EXAMPLE_FIELDS = {
    "seed_id": _text(64),
    "persona_index": _index_or_null,
    "variant": _choice(*GeneratedQuery.Variant.values),
    "domain": _text(64),
    "query": _text(),
    "passage_title": _text(500, allow_empty=True),
    "passage": _text(),
    "kind": _choice(Passage.Kind.POSITIVE, Passage.Kind.HARD_NEGATIVE),
    "label": _boolean,
    "reasoning": _text(),
    "judgment": _boolean,
}


@dataclass(frozen=True)
class DemoFiles:
    personas: list[dict]
    seeds: list[dict]
    examples: list[dict]


def _jsonl_rows(path: Path, fields: dict[str, Callable[[Any], Any]]) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise DemoDataError(file=path, line=0, field="-", message="file not found")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DemoDataError(file=path, line=line_no, field="-",
                                    message=f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise DemoDataError(file=path, line=line_no, field="-", message="each line must be a JSON object")
            unknown = sorted(set(obj) - set(fields))
            if unknown:
                raise DemoDataError(file=path, line=line_no, field=unknown[0],
                                    message=f"unknown field (expected: {', '.join(fields)})")
            clean = {}
            for name, check in fields.items():
                if name not in obj:
                    raise DemoDataError(file=path, line=line_no, field=name, message="missing")
                try:
                    clean[name] = check(obj[name])
                except ValueError as exc:
                    raise DemoDataError(file=path, line=line_no, field=name, message=str(exc)) from None
            rows.append((line_no, clean))
    if not rows:
        raise DemoDataError(file=path, line=0, field="-", message="no rows")
    return rows


def demo_files_read(*, directory: Path) -> DemoFiles:
    """Read and validate the three demo files, cross-references included; raises DemoDataError, writes nothing."""
    persona_path, seed_path, example_path = (directory / n for n in ("personas.jsonl", "seeds.jsonl", "examples.jsonl"))
    personas = _jsonl_rows(persona_path, PERSONA_FIELDS)
    seeds = _jsonl_rows(seed_path, SEED_FIELDS)
    examples = _jsonl_rows(example_path, EXAMPLE_FIELDS)

    # Duplicates would collapse onto one row (hashes are unique), and the line numbers would lie.
    seen: dict[str, int] = {}
    for line_no, row in personas:
        key = text_hash(row["persona"])
        if key in seen:
            raise DemoDataError(file=persona_path, line=line_no, field="persona", message=f"same text as line {seen[key]}")
        seen[key] = line_no
    seen_ids: dict[str, int] = {}
    seen = {}
    for line_no, row in seeds:
        if row["id"] in seen_ids:
            raise DemoDataError(file=seed_path, line=line_no, field="id", message=f"duplicate id, first on line {seen_ids[row['id']]}")
        key = text_hash(row["query"])
        if key in seen:
            raise DemoDataError(file=seed_path, line=line_no, field="query", message=f"same query as line {seen[key]}")
        seen_ids[row["id"]], seen[key] = line_no, line_no

    seen = {}
    for line_no, row in examples:
        def fail(field: str, message: str):
            raise DemoDataError(file=example_path, line=line_no, field=field, message=message)

        if row["seed_id"] not in seen_ids:
            fail("seed_id", f"no seed with id {json.dumps(row['seed_id'])} in {seed_path.name}")
        index = row["persona_index"]
        if index is None and row["variant"] != GeneratedQuery.Variant.ORIGINAL:
            fail("persona_index", f"required for variant {row['variant']} (null only for 'original')")
        if index is not None and index >= len(personas):
            fail("persona_index", f"{index} is out of range: {persona_path.name} has {len(personas)} personas (0-based)")
        expected = row["kind"] == Passage.Kind.POSITIVE
        if row["label"] != expected:
            fail("label", f"must be {json.dumps(expected)} for kind {row['kind']}")
        key = example_content_hash(query=row["query"], passage=row["passage"], label=row["label"])
        if key in seen:
            fail("passage", f"same query, passage and label as line {seen[key]}")
        seen[key] = line_no
    return DemoFiles(personas=[r for _, r in personas], seeds=[r for _, r in seeds], examples=[r for _, r in examples])


def _filter_reason(*, label: bool, judgment: bool) -> str:
    said, meant = ("relevant" if judgment else "not relevant"), ("relevant" if label else "not relevant")
    return f"reasoner judged {said}; intended label is {meant}"


def demo_load(*, directory: Path | str | None = None) -> dict[str, int]:
    """Load the demo files into the "demo" dataset, idempotently and all-or-nothing.

    Validates every file before writing (DemoDataError names file, line, field). Rows are found again by
    their content hashes, so a second run creates nothing and leaves reviewers' work on existing rows alone.
    Returns how many demo rows of each kind exist after the run, plus "created" (rows this run added).
    """
    files = demo_files_read(directory=Path(directory) if directory else DEMO_DIR)
    created = 0
    with transaction.atomic():
        dataset, new = Dataset.objects.get_or_create(
            name=DEMO_DATASET_NAME,
            defaults={"description": DEMO_DATASET_DESCRIPTION, "guidelines": DEMO_GUIDELINES, "reviews_required": 1},
        )
        created += new

        personas = []
        for row in files.personas:
            persona, new = Persona.objects.get_or_create(
                text_hash=text_hash(row["persona"]),
                defaults={"text": row["persona"], "domain": row["domain"], "source": DEMO_SOURCE},
            )
            personas.append(persona)
            created += new

        seeds = {}
        for row in files.seeds:
            seed, new = SeedQuery.objects.get_or_create(
                text_hash=text_hash(row["query"]),
                defaults={"external_id": row["id"], "text": row["query"], "source": DEMO_SOURCE},
            )
            seeds[row["id"]] = seed
            created += new

        query_ids, passage_ids, example_ids = set(), set(), set()
        for row in files.examples:
            seed = seeds[row["seed_id"]]
            persona = None if row["persona_index"] is None else personas[row["persona_index"]]
            # GeneratedQuery and Passage have no unique key of their own: look them up by what identifies them.
            query_hash = text_hash(row["query"])
            query = GeneratedQuery.objects.filter(
                seed=seed, persona=persona, variant=row["variant"], text_hash=query_hash, generation_run__isnull=True,
            ).order_by("id").first()
            if query is None:
                query = GeneratedQuery.objects.create(
                    seed=seed, persona=persona, variant=row["variant"], domain=row["domain"],
                    text=row["query"], text_hash=query_hash,
                )
                created += 1
            passage_hash = text_hash(row["passage"])
            passage = Passage.objects.filter(query=query, kind=row["kind"], text_hash=passage_hash).order_by("id").first()
            if passage is None:
                passage = Passage.objects.create(
                    query=query, kind=row["kind"], title=row["passage_title"], text=row["passage"],
                    source=DEMO_SOURCE, text_hash=passage_hash,
                )
                created += 1
            agrees = row["judgment"] == row["label"]
            example, new = Example.objects.get_or_create(
                content_hash=example_content_hash(query=row["query"], passage=row["passage"], label=row["label"]),
                defaults={
                    "dataset": dataset, "query": query, "passage": passage, "intended_label": row["label"],
                    "reasoning_trace": row["reasoning"], "reasoner_judgment": row["judgment"],
                    "judgment_votes": [row["judgment"]], "origin": Example.Origin.SYNTHETIC,
                    "status": Example.Status.PENDING_REVIEW if agrees else Example.Status.FILTERED_OUT,
                    "filter_reason": "" if agrees else _filter_reason(label=row["label"], judgment=row["judgment"]),
                    "prompt_versions": dict(DEMO_PROMPT_VERSIONS), "reasoner_model": DEMO_REASONER,
                },
            )
            created += new
            query_ids.add(query.id)
            passage_ids.add(passage.id)
            example_ids.add(example.id)

        statuses = Example.objects.filter(id__in=example_ids)
        return {
            "personas": len({p.id for p in personas}),
            "seeds": len({s.id for s in seeds.values()}),
            "queries": len(query_ids),
            "passages": len(passage_ids),
            "examples": len(example_ids),
            "pending_review": statuses.filter(status=Example.Status.PENDING_REVIEW).count(),
            "filtered_out": statuses.filter(status=Example.Status.FILTERED_OUT).count(),
            "created": created,
        }
