"""How PostgreSQL runs the queue functions (migrations 0007 and 0008), read from the plans auto_explain reports for the
statements inside them: generic plans (planned once per connection), index scans on the claims and reviews whatever
the statistics say (deleted claims stay in the indexes until VACUUM), the token's role check probed per user, the
reviewer's-own-review probe skipped where the example has no live review, few statements per request, and a
claim's commit that does not wait for the WAL flush (a submit's does)."""
import re
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from curation.models import ReviewClaim
from curation.selectors.review import ReviewScope
from curation.services import review as svc
from limrank_app.services import api_token_create
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.postgres,
              pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")]

LEASE = "set_config('synchronous_commit', 'off', true)"
SETTINGS = {"log_min_duration": "0", "log_nested_statements": "on", "log_analyze": "on", "log_level": "notice"}


def _plans(action) -> list[str]:
    """auto_explain's report of every statement `action` runs (nested ones included), one string per plan."""
    connection.ensure_connection()
    notices = []
    handler = lambda diag: notices.append(diag.message_primary)  # noqa: E731
    connection.connection.add_notice_handler(handler)
    try:
        with connection.cursor() as cur:
            cur.execute("LOAD 'auto_explain'")
            for name, value in SETTINGS.items():
                cur.execute(f"SET auto_explain.{name} = {value}")
        action()
    finally:
        with connection.cursor() as cur:
            for name in SETTINGS:
                cur.execute(f"RESET auto_explain.{name}")
        connection.connection.remove_notice_handler(handler)
    return [n for n in notices if "Query Text:" in n]


def _claim_and_submit(key, ds):
    claim = svc.review_claim_next_by_token(key=key, scope=ReviewScope(dataset_id=ds.pk))
    assert claim not in (None, svc.DECLINED)
    review = svc.review_submit_by_token(key=key, example=claim.card["id"], decision="approve")
    assert review is not svc.DECLINED and review.example_status == "approved"


def test_queue_statements_use_generic_plans_and_index_scans(reviewer_user):
    ds, examples = factories.review_dataset(n=10)
    other = factories.reviewer()
    # A busy queue's leftovers: claims deleted by submits stay in the claims' indexes until VACUUM.
    now = timezone.now()
    held = ReviewClaim.objects.bulk_create([ReviewClaim(example=ex, reviewer=other, claimed_at=now,
                                                        expires_at=now + timedelta(minutes=15)) for ex in examples[-2:]])
    ReviewClaim.objects.filter(pk__in=[c.pk for c in held]).delete()
    key = api_token_create(user=reviewer_user, name="t", scope="write")[1]
    for _ in range(6):  # past the plan cache's first five executions: what every later request runs
        _claim_and_submit(key, ds)
    plans = _plans(lambda: _claim_and_submit(key, ds))
    nested = [p for p in plans if "limrank_review_" not in p]
    assert len(nested) >= 6, plans  # the functions' own statements were reported
    text = "\n".join(nested)
    for table in ("curation_reviewclaim", "curation_review", "curation_example"):
        assert not re.search(rf"(Seq|Bitmap Heap) Scan on {table}\b", text), text
    # A generic plan compares with parameters ($n); a custom plan has the values written in.
    assert re.search(r"expires_at > \$\d+", text) and "timestamp with time zone" not in text, text


def test_token_role_check_probes_the_user_instead_of_hashing_the_group(reviewer_user):
    for _ in range(3):
        factories.reviewer()
    ds, _ = factories.review_dataset(n=2)
    key = api_token_create(user=reviewer_user, name="t", scope="write")[1]
    plans = _plans(lambda: svc.review_claim_next_by_token(key=key, scope=ReviewScope(dataset_id=ds.pk)))
    [outer] = [p for p in plans if "CROSS JOIN LATERAL" in p]
    assert "auth_user_groups" in outer and "hashed SubPlan" not in outer, outer


def _own_review_probe(candidate_plan: str) -> str:
    return re.search(r"Index [^\n]*Scan [^\n]*on curation_review r[^\n]*", candidate_plan).group(0)


def test_own_review_probe_runs_only_where_the_example_has_a_live_review(reviewer_user):
    ds, [ex] = factories.review_dataset(n=1, reviews_required=2)
    key = api_token_create(user=reviewer_user, name="t", scope="write")[1]
    scope = ReviewScope(dataset_id=ds.pk)
    # Nobody has reviewed it: the probe of reviewer_user's reviews is in the plan but does not run.
    plans = _plans(lambda: svc.review_claim_next_by_token(key=key, scope=scope))
    [candidate] = [p for p in plans if "SKIP LOCKED" in p]
    assert "never executed" in _own_review_probe(candidate), candidate
    # Another reviewer's review is live on it: now the probe runs (and finds none of reviewer_user's).
    svc.review_skip(reviewer=reviewer_user, example=ex.pk)
    first = factories.reviewer()
    svc.review_claim_next(reviewer=first, scope=scope)
    svc.review_submit(reviewer=first, example=ex.pk, decision="approve")
    plans = _plans(lambda: svc.review_claim_next_by_token(key=key, scope=scope))
    candidates = [p for p in plans if "SKIP LOCKED" in p]  # a pass without skipped examples, then one with them
    assert any("never executed" not in _own_review_probe(p) for p in candidates), candidates


def _statements(action) -> list[str]:
    """The statements the queue functions ran for `action`: the functions' own, the settings call left out."""
    return [p for p in _plans(action) if "limrank_review_" not in p and "set_config" not in p]


def test_claim_and_submit_run_few_statements(reviewer_user):
    # Each statement pays an executor start (migration 0008): a new claim is 4 statements, a resumed one 2, a submit 2.
    ds, _ = factories.review_dataset(n=10)
    key = api_token_create(user=reviewer_user, name="t", scope="write")[1]
    scope = ReviewScope(dataset_id=ds.pk)
    for _ in range(6):
        _claim_and_submit(key, ds)
    got = {}
    new = _statements(lambda: got.update(claim=svc.review_claim_next_by_token(key=key, scope=scope)))
    assert len(new) == 4, new
    resumed = _statements(lambda: got.update(again=svc.review_claim_next_by_token(key=key, scope=scope)))
    assert len(resumed) == 2 and got["again"].card["id"] == got["claim"].card["id"], resumed
    submit = _statements(lambda: got.update(review=svc.review_submit_by_token(key=key, example=got["claim"].card["id"],
                                                                              decision="reject", reason_code=2)))
    assert len(submit) == 2, submit
    assert got["review"].example_status == "rejected" and not ReviewClaim.objects.filter(reviewer=reviewer_user).exists()


def _synchronous_commit() -> str:
    with connection.cursor() as cur:
        cur.execute("SHOW synchronous_commit")
        return cur.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_claim_of_its_own_commits_without_waiting_for_the_flush_a_submit_never(reviewer_user):
    ds, _ = factories.review_dataset(n=3)
    key = api_token_create(user=reviewer_user, name="t", scope="write")[1]
    scope = ReviewScope(dataset_id=ds.pk)

    def sql_of(action, function):
        with CaptureQueriesContext(connection) as ctx:
            result = action()
        [sql] = [q["sql"] for q in ctx.captured_queries if function in q["sql"]]
        return result, sql

    # Autocommit, as requests run: the claim is a transaction of its own and asks for an asynchronous commit.
    claim, sql = sql_of(lambda: svc.review_claim_next_by_token(key=key, scope=scope), "limrank_review_claim_next")
    assert LEASE in sql
    assert _synchronous_commit() == "on"  # SET LOCAL: it ended with the claim's transaction
    assert ReviewClaim.objects.filter(reviewer=reviewer_user, example_id=claim.card["id"]).exists()
    # Inside a caller's transaction the caller's other writes decide: a synchronous commit (token and UI paths).
    with transaction.atomic():
        again, sql = sql_of(lambda: svc.review_claim_next_by_token(key=key, scope=scope), "limrank_review_claim_next")
        assert LEASE not in sql and _synchronous_commit() == "on" and again.card["id"] == claim.card["id"]
        svc.review_claim_next(reviewer=reviewer_user, scope=scope)
        assert _synchronous_commit() == "on"
    _, sql = sql_of(lambda: svc.review_claim_next(reviewer=reviewer_user, scope=scope), "limrank_review_claim_next")
    assert LEASE in sql
    review, sql = sql_of(lambda: svc.review_submit_by_token(key=key, example=claim.card["id"], decision="approve"),
                         "limrank_review_submit")
    assert "synchronous_commit" not in sql and review.example_status == "approved"
    assert ReviewClaim.objects.count() == 0
