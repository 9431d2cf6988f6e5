"""Versioned prompt templates of the synthesizer, stored in the database.

A template is a Python `str.format` string (literal braces doubled). Editing never changes a version in
place: saving creates the next version, makes it the active one, and keeps the old ones, so every
example can record the versions that made it (`Example.prompt_versions`).
"""
from __future__ import annotations

import string

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from curation.models import PromptTemplate

Name = PromptTemplate.Name

# The fields each template must use (and the only ones it may use).
PROMPT_FIELDS: dict[str, set[str]] = {
    Name.REWRITE: {"persona", "seed_query"},
    Name.POSITIVE: {"query", "domain"},
    Name.HARD_NEGATIVE: {"query", "domain", "n_negatives"},
    Name.REASONER: {"query", "passage"},
}

# Defaults, written for the studio after the paper's three guidelines: domain diversity, real-world
# alignment, difficulty diversity. The output formats are what curation.services.generation parses.
PROMPT_DEFAULTS: dict[str, str] = {
    Name.REWRITE: """You turn a web search query into two realistic search needs of a specific person.

Persona: {persona}
Seed query: {seed_query}

Write two rewrites of the seed query's information need, as this person would have it:
1. "daily_life": the need as it arises in the person's everyday life, in their own words and situation
   (who they are, what they are doing, why they need the answer now). Plain language, one to three sentences.
2. "expert": the need as a professional question in the specialised field closest to the persona
   (for example finance, law, healthcare, engineering, science, education). Use that field's vocabulary and
   make the question demanding: the answer should need some inference or domain knowledge, not just a
   keyword match with a passage.
Keep the core topic of the seed query recognisable in both. Vary how hard the two are. Do not answer them.
Also name the specialised domain of the expert rewrite in one or two words.

Answer with one JSON object and nothing else:
{{"domain": "<domain>", "daily_life": "<daily-life rewrite>", "expert": "<expert rewrite>"}}
""",
    Name.POSITIVE: """Write a passage that a good search engine would return for the query below and that answers it.

Domain: {domain}
Query: {query}

The passage must read like a real document of this domain (a reference article, a guideline, a forum answer
by a practitioner, a textbook paragraph), 80 to 200 words, factual and self-contained. It must contain what
is needed to answer the query, but the answer may take a step of reasoning to find: do not simply repeat the
query's words. Give it a short, realistic title.

Answer with one JSON object and nothing else:
{{"title": "<title>", "passage": "<passage text>"}}
""",
    Name.HARD_NEGATIVE: """Write {n_negatives} hard-negative passages for the query below: passages a search engine
would plausibly return, on the same topic and with much of the same vocabulary, that nevertheless do NOT
answer the query.

Domain: {domain}
Query: {query}

Make each one miss in a different, subtle way: a different but similar entity, the wrong time period or
jurisdiction, a broader or narrower scope, a related question answered instead, or a reasoning step that
does not hold for this query. Each passage reads like a real document of the domain, 80 to 200 words,
factual and self-contained, with a short title. Never state that it is unrelated.

Answer with one JSON object and nothing else:
{{"hard_negatives": [{{"title": "<title>", "passage": "<passage text>", "why_not_relevant": "<one sentence>"}}]}}
""",
    Name.REASONER: """Determine if the following passage is relevant to the query. Answer only with 'true' or 'false'.
Query: {query}
Passage: {passage}
""",
}

PROMPT_NOTES_DEFAULT = "studio default (version 1)"


def prompt_fields_used(text: str) -> set[str]:
    """Field names in a str.format template; raises ValidationError on a malformed template."""
    try:
        return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ValidationError(f"not a valid template ({exc}); write literal braces as {{{{ and }}}}") from None


def prompt_validate(*, name: str, text: str) -> None:
    if name not in PROMPT_FIELDS:
        raise ValidationError(f"unknown prompt {name!r}")
    used = prompt_fields_used(text)
    if "" in used:
        raise ValidationError("positional fields {} are not allowed; name them")
    missing, unknown = PROMPT_FIELDS[name] - used, used - PROMPT_FIELDS[name]
    if missing:
        raise ValidationError(f"the {name} prompt must use {', '.join('{' + f + '}' for f in sorted(missing))}")
    if unknown:
        raise ValidationError(f"unknown fields {', '.join('{' + f + '}' for f in sorted(unknown))}; allowed: {', '.join(sorted(PROMPT_FIELDS[name]))}")


def prompt_render(*, template: PromptTemplate, **fields) -> str:
    return template.text.format(**{k: fields[k] for k in PROMPT_FIELDS[template.name]})


def prompt_defaults_ensure() -> list[PromptTemplate]:
    """Create version 1 of every prompt that has no version yet (idempotent). Returns the created rows."""
    created = []
    for name, text in PROMPT_DEFAULTS.items():
        if PromptTemplate.objects.filter(name=name).exists():
            continue
        try:
            with transaction.atomic():
                created.append(PromptTemplate.objects.create(name=name, version=1, text=text, notes=PROMPT_NOTES_DEFAULT, is_active=True))
        except IntegrityError:  # a concurrent caller made it first
            pass
    return created


@transaction.atomic
def prompt_version_create(*, name: str, text: str, notes: str = "", created_by=None) -> PromptTemplate:
    """Save an edit as the next version of `name` and make it the active one."""
    prompt_validate(name=name, text=text)
    # Lock the existing versions so two editors get consecutive numbers.
    list(PromptTemplate.objects.select_for_update().filter(name=name).values_list("id", flat=True))
    latest = PromptTemplate.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0
    PromptTemplate.objects.filter(name=name, is_active=True).update(is_active=False)
    prompt = PromptTemplate(name=name, version=latest + 1, text=text, notes=notes, created_by=created_by, is_active=True)
    prompt.full_clean()
    prompt.save()
    return prompt


@transaction.atomic
def prompt_activate(*, prompt: PromptTemplate) -> PromptTemplate:
    """Go back to an earlier version: it becomes the one new runs use."""
    PromptTemplate.objects.filter(name=prompt.name, is_active=True).exclude(pk=prompt.pk).update(is_active=False)
    if not prompt.is_active:
        prompt.is_active = True
        prompt.save(update_fields=["is_active"])
    return prompt


def prompt_active(*, name: str) -> PromptTemplate:
    """The version new runs use (the defaults are created on first use)."""
    prompt = PromptTemplate.objects.filter(name=name, is_active=True).order_by("-version").first()
    if prompt is None:
        prompt_defaults_ensure()
        prompt = PromptTemplate.objects.filter(name=name).order_by("-is_active", "-version").first()
    return prompt
