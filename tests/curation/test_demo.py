"""The shipped demo: load_demo is idempotent, creates the demo users, and loads complete, well-formed examples."""
from __future__ import annotations

import json
import re
import shutil
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from curation.hashing import example_content_hash
from curation.models import Dataset, Example, GeneratedQuery, Passage, Persona, SeedQuery
from curation.services import demo as demo_service
from curation.services.demo import DEMO_DIR, DemoDataError, demo_load
from limrank_app.roles import ADMIN, REVIEWER, user_is_admin, user_is_reviewer

pytestmark = pytest.mark.django_db
MODELS = (Dataset, Persona, SeedQuery, GeneratedQuery, Passage, Example)


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # The tests check which password is set, not PBKDF2's cost (seconds per hash on a shared CI core).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def shipped(name: str) -> list[dict]:
    return [json.loads(line) for line in (DEMO_DIR / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def db_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def expected_counts() -> dict[str, int]:
    examples = shipped("examples.jsonl")
    agree = sum(row["judgment"] == row["label"] for row in examples)
    return {
        "personas": len(shipped("personas.jsonl")),
        "seeds": len(shipped("seeds.jsonl")),
        "queries": len({(r["seed_id"], r["persona_index"], r["variant"], r["query"]) for r in examples}),
        "passages": len(examples),
        "examples": len(examples),
        "pending_review": agree,
        "filtered_out": len(examples) - agree,
    }


def test_load_demo_twice_creates_nothing_new(monkeypatch):
    monkeypatch.setenv("LIMRANK_DEMO_PASSWORD", "demo-pass-1234")
    call_command("load_demo", stdout=StringIO())
    after_first = db_counts()
    users_first = set(get_user_model().objects.values_list("id", "username"))
    call_command("load_demo", stdout=StringIO())
    assert db_counts() == after_first
    assert set(get_user_model().objects.values_list("id", "username")) == users_first

    expected = expected_counts()
    assert after_first["Example"] == expected["examples"]
    assert after_first["Persona"] == expected["personas"]
    assert after_first["SeedQuery"] == expected["seeds"]
    assert after_first["GeneratedQuery"] == expected["queries"]
    assert after_first["Dataset"] == 1
    # The service reports the same totals on every run, and that it added nothing the second time.
    stats = demo_load()
    assert stats.pop("created") == 0
    assert stats == expected


def test_first_load_reports_what_it_created():
    stats = demo_load()
    expected = expected_counts()
    # dataset + personas + seeds + queries + passages + examples
    assert stats["created"] == 1 + sum(expected[k] for k in ("personas", "seeds", "queries", "passages", "examples"))
    assert {k: v for k, v in stats.items() if k != "created"} == expected


def test_demo_users_have_roles_and_the_env_password(monkeypatch):
    monkeypatch.setenv("LIMRANK_DEMO_PASSWORD", "env-chosen-pass-42")
    out = StringIO()
    call_command("load_demo", stdout=out)
    assert "env-chosen-pass-42" not in out.getvalue()  # a password set in the env is not echoed
    User = get_user_model()
    admin, reviewer = User.objects.get(username="demo-admin"), User.objects.get(username="demo-reviewer")
    assert set(admin.groups.values_list("name", flat=True)) == {ADMIN}
    assert set(reviewer.groups.values_list("name", flat=True)) == {REVIEWER}
    assert user_is_admin(admin) and admin.is_staff
    assert user_is_reviewer(reviewer) and not user_is_admin(reviewer) and not reviewer.is_staff
    assert admin.check_password("env-chosen-pass-42") and reviewer.check_password("env-chosen-pass-42")


def test_generated_password_is_printed_and_works(monkeypatch):
    monkeypatch.delenv("LIMRANK_DEMO_PASSWORD", raising=False)
    out = StringIO()
    call_command("load_demo", stdout=out)
    match = re.search(r"password \(generated\): (\S+)", out.getvalue())
    assert match, out.getvalue()
    password = match.group(1)
    for username in ("demo-admin", "demo-reviewer"):
        assert get_user_model().objects.get(username=username).check_password(password)


def test_every_example_is_complete_and_statuses_match_the_file():
    demo_load()
    dataset = Dataset.objects.get(name="demo")
    assert dataset.reviews_required == 1
    for code, reason in ((1, "doesn't answer"), (2, "unrealistic"), (3, "Factual error"), (4, "Reasoning trace wrong"), (5, "Other")):
        assert re.search(rf"^{code}\. \*\*.*{re.escape(reason)}", dataset.guidelines, re.M | re.I), reason

    rows = {example_content_hash(query=r["query"], passage=r["passage"], label=r["label"]): r for r in shipped("examples.jsonl")}
    examples = list(Example.objects.filter(dataset=dataset).select_related("query__persona", "query__seed", "passage"))
    assert len(examples) == len(rows)
    for ex in examples:
        row = rows[ex.content_hash]
        assert ex.query.text == row["query"] and ex.query.variant == row["variant"] and ex.query.domain == row["domain"]
        assert ex.query.seed.external_id == row["seed_id"]
        assert (ex.query.persona is None) == (row["persona_index"] is None)
        assert ex.passage.text == row["passage"] and ex.passage.title == row["passage_title"]
        assert ex.passage.kind == row["kind"] and ex.passage.query_id == ex.query_id
        assert ex.reasoning_trace == row["reasoning"] and ex.reasoner_judgment is row["judgment"]
        assert ex.intended_label is row["label"]
        assert ex.origin == Example.Origin.SYNTHETIC and ex.prompt_versions == {"demo": 1}
        if row["judgment"] == row["label"]:
            assert ex.status == Example.Status.PENDING_REVIEW and ex.filter_reason == ""
        else:
            assert ex.status == Example.Status.FILTERED_OUT and "reasoner judged" in ex.filter_reason
    by_status = {s: Example.objects.filter(dataset=dataset, status=s).count() for s in ("pending_review", "filtered_out")}
    expected = expected_counts()
    assert by_status == {"pending_review": expected["pending_review"], "filtered_out": expected["filtered_out"]}


def test_persona_index_points_at_the_right_persona():
    demo_load()
    personas = shipped("personas.jsonl")
    for row in shipped("examples.jsonl"):
        if row["persona_index"] is None:
            continue
        query = GeneratedQuery.objects.get(text=row["query"], variant=row["variant"])
        assert query.persona.text == personas[row["persona_index"]]["persona"]


def test_shipped_files_follow_the_brief():
    """Content rules the demo promises its reviewers: sizes, mix, disagreements, diversity."""
    personas, seeds, examples = shipped("personas.jsonl"), shipped("seeds.jsonl"), shipped("examples.jsonl")
    assert 25 <= len(personas) <= 40 and 25 <= len(seeds) <= 40 and 45 <= len(examples) <= 70
    assert len({p["domain"] for p in personas}) >= 12
    assert len({e["domain"] for e in examples}) >= 10
    assert {e["variant"] for e in examples} == {"daily_life", "expert", "original"}
    kinds = [e["kind"] for e in examples]
    assert kinds.count("hard_negative") >= len(examples) // 3
    disagreements = [e for e in examples if e["judgment"] != e["label"]]
    assert 4 <= len(disagreements) <= 8
    assert {e["kind"] for e in disagreements} == {"positive", "hard_negative"}  # the reasoner errs both ways
    assert sum("borderline" in e["reasoning"].lower() for e in examples) >= 3
    for i, e in enumerate(examples, start=1):
        words = len(e["passage"].split())
        assert 60 <= words <= 200, f"examples.jsonl line {i}: passage has {words} words"
        sentences = len(re.findall(r"[.!?](?:\s|$)", e["reasoning"]))
        assert 4 <= sentences <= 10, f"examples.jsonl line {i}: reasoning has {sentences} sentences"
        assert e["reasoning"].rstrip().endswith(("Relevant.", "Not relevant.", "relevant.")), i
    # Each hard negative shares its query with a positive: it is a distractor for a real information need.
    positives = {e["query"] for e in examples if e["kind"] == "positive"}
    assert all(e["query"] in positives for e in examples if e["kind"] == "hard_negative")


@pytest.fixture
def demo_copy(tmp_path):
    for name in ("personas.jsonl", "seeds.jsonl", "examples.jsonl"):
        shutil.copy(DEMO_DIR / name, tmp_path / name)
    return tmp_path


def _rewrite_line(path, line_no: int, change) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_no - 1] = change(lines[line_no - 1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _edit_json(**changes):
    def change(line: str) -> str:
        obj = json.loads(line)
        for key, value in changes.items():
            if value is KeyError:
                obj.pop(key)
            else:
                obj[key] = value
        return json.dumps(obj)

    return change


@pytest.mark.parametrize(
    ("file", "line", "change", "field", "message"),
    [
        ("examples.jsonl", 7, _edit_json(reasoning=KeyError), "reasoning", "missing"),
        ("examples.jsonl", 12, _edit_json(judgment="yes"), "judgment", "true or false"),
        ("examples.jsonl", 20, _edit_json(passage="   "), "passage", "must not be empty"),
        ("examples.jsonl", 3, _edit_json(variant="casual"), "variant", "one of"),
        ("examples.jsonl", 30, _edit_json(seed_id="demo-999"), "seed_id", "no seed"),
        ("examples.jsonl", 5, _edit_json(persona_index=999), "persona_index", "out of range"),
        ("examples.jsonl", 9, _edit_json(persona_index=None), "persona_index", "only for 'original'"),
        ("examples.jsonl", 2, _edit_json(label=True), "label", "must be false for kind hard_negative"),
        ("examples.jsonl", 4, _edit_json(judgement=True), "judgement", "unknown field"),
        ("examples.jsonl", 41, lambda line: line[:-5], "-", "invalid JSON"),
        ("personas.jsonl", 17, _edit_json(domain=7), "domain", "must be a string"),
        ("seeds.jsonl", 8, _edit_json(id="demo-1"), "id", "duplicate id"),
    ],
)
def test_malformed_demo_file_names_line_and_field_and_writes_nothing(demo_copy, file, line, change, field, message):
    _rewrite_line(demo_copy / file, line, change)
    with pytest.raises(DemoDataError) as caught:
        demo_load(directory=demo_copy)
    err = caught.value
    assert (err.file, err.line, err.field) == (str(demo_copy / file), line, field)
    text = str(err)
    assert file in text and f"line {line}" in text and f"'{field}'" in text and message in text
    assert all(n == 0 for n in db_counts().values()), db_counts()


def test_missing_file_is_reported(demo_copy):
    (demo_copy / "seeds.jsonl").unlink()
    with pytest.raises(DemoDataError, match=r"seeds\.jsonl.*file not found"):
        demo_load(directory=demo_copy)
    assert all(n == 0 for n in db_counts().values())


def test_a_failure_while_writing_rolls_everything_back(monkeypatch):
    """Validation passes but the database write fails half-way: nothing of the partial load remains."""
    real = Example.objects.get_or_create
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(Example.objects, "get_or_create", flaky)
    with pytest.raises(RuntimeError):
        demo_service.demo_load()
    assert calls["n"] == 10
    assert all(n == 0 for n in db_counts().values()), db_counts()
