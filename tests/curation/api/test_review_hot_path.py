"""The review queue's hot path (claim-next and submit over the API): the hand-built parts answer exactly what the
serializers would, a token request costs one query for authentication, and on PostgreSQL each action is one
more round trip (the functions of migration 0003)."""
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer

from curation.api import review as api
from curation.models import Example, Review, ReviewClaim
from curation.selectors.review import ReviewScope
from curation.services import review as svc
from limrank_app.services import api_token_create
from tests import factories

pytestmark = pytest.mark.django_db
JSON = {"content_type": "application/json"}


def _auth(user, scope="write"):
    return {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=user, name='t', scope=scope)[1]}"}


def _errors(fn, data):
    try:
        fn(data)
    except ValidationError as exc:
        return set(exc.detail)
    return set()


BAD_SUBMITS = [
    {}, {"decision": "approve"}, {"example": "x", "decision": "approve"}, {"example": 0, "decision": "approve"},
    {"example": 2.5, "decision": "approve"}, {"example": True, "decision": "approve"}, {"example": 3},
    {"example": 3, "decision": "maybe"}, {"example": 3, "decision": "approve", "reason": ["x"]},
    {"example": 3, "decision": "approve", "seconds_spent": -1}, {"example": 3, "decision": "approve", "seconds_spent": "a"},
    {"example": 3, "decision": "reject", "reason_code": "x"}, {"example": 3, "decision": "approve", "edits": ["query"]},
]
BAD_SCOPES = [{}, {"dataset": "x"}, {"dataset": 0}, {"dataset": 1, "generation_run": 2}, {"generation_run": -3}]


@pytest.mark.parametrize("data", BAD_SUBMITS)
def test_submit_input_errors_name_the_same_fields_as_the_serializer(data):
    serializer = api.SubmitIn(data=data)
    assert not serializer.is_valid()
    assert _errors(api._submit_in, data) == set(serializer.errors)


@pytest.mark.parametrize("data", BAD_SCOPES)
def test_scope_input_errors_match_the_serializer(data):
    serializer = api.ScopeIn(data=data)
    assert not serializer.is_valid()
    assert _errors(api._scope_in, data) == set(serializer.errors)


def test_valid_input_reads_as_the_serializer_reads_it():
    data = {"example": "7", "decision": "reject", "reason_code": 2, "seconds_spent": 4, "edits": {"label": True}}
    serializer = api.SubmitIn(data=data)
    assert serializer.is_valid()
    mine = api._submit_in(data)
    for key, value in serializer.validated_data.items():
        assert mine[key] == value
    assert api._scope_in({"dataset": "4"}) == ReviewScope(dataset_id=4)


def test_claim_and_submit_answers_have_the_serializers_shape(client, reviewer_user):
    ds, [ex] = factories.review_dataset(n=1)
    auth = _auth(reviewer_user)
    body = client.post(reverse("api-review-next"), {"dataset": ds.pk}, **JSON, **auth).json()
    example = Example.objects.select_related("query__persona", "passage").get(pk=ex.pk)
    assert body["example"] == dict(api.ClaimedExampleOut(example).data)
    resp = client.post(reverse("api-review-submit"), {"example": ex.pk, "decision": "approve", "seconds_spent": 2}, **JSON, **auth)
    assert resp.status_code == 201
    review = Review.objects.select_related("example").get(pk=resp.json()["id"])
    assert resp.json() == dict(api.ReviewOut(review).data)
    assert resp.json()["example_status"] == Example.Status.APPROVED


def test_missing_scope_is_404_not_a_server_error(client, reviewer_user):
    auth = _auth(reviewer_user)
    assert client.post(reverse("api-review-next"), {"dataset": 999999}, **JSON, **auth).status_code == 404
    assert client.post(reverse("api-review-next"), {"generation_run": 999999}, **JSON, **auth).status_code == 404
    assert client.post(reverse("api-review-undo"), {"dataset": 999999}, **JSON, **auth).status_code == 404


def test_token_authentication_is_one_query_and_remembers_the_role(client, reviewer_user):
    ds, [ex] = factories.review_dataset(n=1)
    auth = _auth(reviewer_user)
    client.post(reverse("api-review-next"), {"dataset": ds.pk}, **JSON, **auth)  # touches last_used_at once
    svc.review_skip(reviewer=reviewer_user, example=ex.pk)
    with CaptureQueriesContext(connection) as ctx:
        resp = client.post(reverse("api-review-next"), {"dataset": ds.pk}, **JSON, **auth)
    assert resp.status_code == 200
    auth_queries = [q["sql"] for q in ctx.captured_queries if "curation_apitoken" in q["sql"]]
    group_queries = [q["sql"] for q in ctx.captured_queries if "auth_group" in q["sql"] and "curation_apitoken" not in q["sql"]]
    assert len(auth_queries) == 1 and group_queries == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")
def test_postgresql_token_claim_and_submit_are_one_statement_each(client, reviewer_user):
    ds, [ex, _] = factories.review_dataset(n=2)
    auth = _auth(reviewer_user)
    client.post(reverse("api-review-skip"), {"example": 0}, **JSON, **auth)  # warm: last_used_at written
    with CaptureQueriesContext(connection) as ctx:
        resp = client.post(reverse("api-review-next"), {"dataset": ds.pk}, **JSON, **auth)
    assert resp.status_code == 200 and len(ctx.captured_queries) == 1, [q["sql"][:80] for q in ctx.captured_queries]
    with CaptureQueriesContext(connection) as ctx:
        resp = client.post(reverse("api-review-submit"), {"example": resp.json()["example"]["id"], "decision": "approve"}, **JSON, **auth)
    assert resp.status_code == 201 and len(ctx.captured_queries) == 1, [q["sql"][:80] for q in ctx.captured_queries]
    assert Review.objects.get(pk=resp.json()["id"]).reviewer_id == reviewer_user.pk


def _answer(resp):
    # The claim's expiry is the one value that depends on when the request ran.
    body = re.sub(rb'"expires_at":"[^"]+"', b'"expires_at":"..."', resp.content)
    return resp.status_code, body, {k: v for k, v in resp.headers.items() if k not in ("Date", "Content-Length")}


def _full_path_only(monkeypatch):
    """Token requests through DRF's full cycle, as every request went before the one-statement path."""
    for view in (api.ReviewNextView, api.ReviewSubmitView):
        monkeypatch.setattr(view, "token_post", lambda self, key, data: None)


def _token_vs_full_path(client, reviewer_user, monkeypatch, *, count_queries: bool):
    # The same request in the same state, once through the one-statement path, once through DRF's full cycle.
    ds, [ex] = factories.review_dataset(n=1)
    # Text a driver or a renderer could get wrong: escapes, quotes, non-ASCII, U+2028 (which JSONRenderer escapes),
    # a null judgment, votes in jsonb.
    Example.objects.filter(pk=ex.pk).update(reasoning_trace='Tab\there, "quoted", \\ é 😀\u2028\nsecond line',
                                            reasoner_judgment=None, judgment_votes=[True, False, {"model": "r1"}])
    auth = _auth(reviewer_user)
    fixed = timezone.now()
    answers = {}
    client.post(reverse("api-review-skip"), {"example": 0}, **JSON, **auth)  # warm: last_used_at written
    for path in ("token", "full"):
        if path == "full":
            _full_path_only(monkeypatch)
        if count_queries:
            with CaptureQueriesContext(connection) as ctx:
                nxt = client.post(reverse("api-review-next"), {"dataset": ds.pk}, **JSON, **auth)
            assert len(ctx.captured_queries) == (1 if path == "token" else 2)
        else:
            nxt = client.post(reverse("api-review-next"), {"dataset": ds.pk}, **JSON, **auth)
        sub = client.post(reverse("api-review-submit"), {"example": ex.pk, "decision": "reject", "reason_code": 2,
                                                         "seconds_spent": 1.5}, **JSON, **auth)
        empty = client.post(reverse("api-review-next"), {"dataset": ds.pk}, **JSON, **auth)
        review = Review.objects.select_related("example").get(pk=sub.json()["id"])
        review.created_at = fixed  # the two rounds ran at different times
        answers[path] = [_answer(nxt), _answer(empty), (sub.status_code, api.ReviewOut(review).data, _answer(sub)[2])]
        assert sub.content == JSONRenderer().render(
            api.ReviewOut(Review.objects.select_related("example").get(pk=review.pk)).data)
        Review.objects.all().delete()
        Example.objects.filter(pk=ex.pk).update(status=Example.Status.PENDING_REVIEW, reviews_done=0)
    tok, full = answers["token"], answers["full"]
    assert [a[0] for a in tok] == [a[0] for a in full] == [200, 204, 201]
    assert tok[0][1] != b"" and tok[0] == full[0]  # the claim's card: bytes and headers
    assert tok[1] == full[1]  # nothing left: 204, empty body, same headers
    assert tok[2][2] == full[2][2]  # the submit's headers (its body is compared with DRF's rendering above)
    tok[2][1].pop("id"), full[2][1].pop("id")
    assert tok[2][1] == full[2][1]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")
def test_postgresql_token_path_answers_byte_for_byte_as_the_full_path(client, reviewer_user, monkeypatch):
    _token_vs_full_path(client, reviewer_user, monkeypatch, count_queries=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_postgresql_libpq_path_answers_byte_for_byte_as_the_full_path(client, reviewer_user, monkeypatch):
    # Outside a transaction, as requests run, the statements go through libpq in text form (services.libpq_prepared).
    _token_vs_full_path(client, reviewer_user, monkeypatch, count_queries=False)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_postgresql_libpq_path_prepares_once_per_connection_and_again_when_deallocated(reviewer_user):
    ds, examples = factories.review_dataset(n=3)
    key = api_token_create(user=reviewer_user, name="t", scope="write")[1]
    scope = ReviewScope(dataset_id=ds.pk)
    claim = svc.review_claim_next_by_token(key=key, scope=scope)
    review = svc.review_submit_by_token(key=key, example=claim.card["id"], decision="approve", seconds_spent=2)
    assert isinstance(review.id, int) and review.seconds_spent == 2.0 and review.example_status == "approved"
    with connection.cursor() as cur:
        cur.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'limrank_%%'")
        assert len(cur.fetchall()) == 2  # claim and submit, each prepared once
        cur.execute("DEALLOCATE ALL")  # as a pooler's reset would
    again = svc.review_claim_next_by_token(key=key, scope=scope)
    assert again.card["id"] == examples[1].pk and again.expires_at > claim.expires_at
    connection.close()  # a new connection prepares its own
    assert svc.review_claim_next_by_token(key=key, scope=scope).card["id"] == examples[1].pk


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")
def test_postgresql_token_path_admits_exactly_whom_the_permissions_admit(client):
    # Every kind of caller the one-statement path must refuse is answered by the full path with its reason, and
    # the service itself declines them (nothing claimed); the ones it admits act as themselves.
    from limrank_app.services import api_token_revoke
    from django.contrib.auth import get_user_model

    ds, examples = factories.review_dataset(n=8)
    User = get_user_model()
    nobody = User.objects.create_user("nobody", password="x")  # no role
    inactive = factories.reviewer(username="gone")
    revoked_owner = factories.reviewer(username="revoked")
    revoked, revoked_key = api_token_create(user=revoked_owner, name="t", scope="write")
    api_token_revoke(token=revoked)
    root = User.objects.create_superuser("root", password="x")  # a superuser without groups is an admin
    cases = [
        ("read-only token", _key(factories.reviewer(username="reader"), "read"), 403),
        ("no role", _key(nobody, "write"), 403),
        ("revoked", revoked_key, 401),
        ("unknown", "lrs_not-a-token", 401),
        ("reviewer", _key(factories.reviewer(username="rev"), "write"), 200),
        ("admin", _key(factories.admin(username="adm"), "write"), 200),
        ("superuser", _key(root, "write"), 200),
    ]
    inactive_key = _key(inactive, "write")
    User.objects.filter(pk=inactive.pk).update(is_active=False)
    cases.append(("inactive user", inactive_key, 401))
    for name, key, expected in cases:
        admitted = svc.review_claim_next_by_token(key=key, scope=ReviewScope(dataset_id=ds.pk)) is not svc.DECLINED
        assert admitted == (expected == 200), name
        ReviewClaim.objects.all().delete()
        resp = client.post(reverse("api-review-next"), {"dataset": ds.pk}, **JSON, HTTP_AUTHORIZATION=f"Bearer {key}")
        assert resp.status_code == expected, (name, resp.content)
        if expected == 200:
            claim = ReviewClaim.objects.get()
            assert claim.reviewer.username == {"reviewer": "rev", "admin": "adm", "superuser": "root"}[name]
            example = claim.example_id
        else:
            assert not ReviewClaim.objects.exists(), name
            example = examples[0].pk
        reviews = Review.objects.count()
        submit = client.post(reverse("api-review-submit"), {"example": example, "decision": "approve"}, **JSON,
                             HTTP_AUTHORIZATION=f"Bearer {key}")
        assert submit.status_code == (201 if expected == 200 else expected), (name, submit.content)
        assert Review.objects.count() - reviews == (1 if expected == 200 else 0), name
        ReviewClaim.objects.all().delete()


def _key(user, scope):
    return api_token_create(user=user, name="t", scope=scope)[1]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")
def test_postgresql_token_path_hands_errors_and_edits_to_the_full_path(client, reviewer_user):
    ds, [ex, other] = factories.review_dataset(n=2)
    auth = _auth(reviewer_user)
    # Bad input, a claim the reviewer does not hold, an unknown scope: the full path's answers.
    bad = client.post(reverse("api-review-submit"), {"example": ex.pk, "decision": "maybe"}, **JSON, **auth)
    assert bad.status_code == 400 and "decision" in bad.json()
    assert client.post(reverse("api-review-next"), "[1]", **JSON, **auth).status_code == 400
    assert client.post(reverse("api-review-next"), {"dataset": 10**9}, **JSON, **auth).status_code == 404
    unheld = client.post(reverse("api-review-submit"), {"example": other.pk, "decision": "approve"}, **JSON, **auth)
    assert unheld.status_code == 403 and "claim" in unheld.json()["detail"]
    nan = client.post(reverse("api-review-submit"), '{"example": 1, "decision": "approve", "seconds_spent": NaN}', **JSON, **auth)
    assert nan.status_code == 400
    # Edits take the full path (a revision is written) and still answer 201.
    claimed = client.post(reverse("api-review-next"), {"dataset": ds.pk}, **JSON, **auth).json()["example"]["id"]
    edited = client.post(reverse("api-review-submit"), {"example": claimed, "decision": "approve",
                                                        "edits": {"query": "a better query"}}, **JSON, **auth)
    assert edited.status_code == 201 and edited.json()["edits"] == {"query": "a better query"}
    # And the token's last use is recorded by the one-statement path too (at most once a minute).
    from limrank_app.models import ApiToken

    ApiToken.objects.update(last_used_at=None)
    client.post(reverse("api-review-next"), {"dataset": ds.pk}, **JSON, **auth)
    assert ApiToken.objects.get().last_used_at is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's queue function")
def test_postgresql_queue_moves_past_a_window_of_held_examples(reviewer_user):
    # More examples held by others at the front than one candidate window (256): the claim comes from the next window.
    ds, examples = factories.review_dataset(n=300)
    other = factories.reviewer()
    expires = timezone.now() + timedelta(minutes=15)
    ReviewClaim.objects.bulk_create([ReviewClaim(example=ex, reviewer=other, expires_at=expires) for ex in examples[:270]])
    claim = svc.review_claim_next(reviewer=reviewer_user, scope=ReviewScope(dataset=ds))
    assert claim is not None and claim.example_id == examples[270].pk
    # And the reviewer's own skips come last, after every other example with a free slot.
    svc.review_skip(reviewer=reviewer_user, example=claim.example_id)
    assert svc.review_claim_next(reviewer=reviewer_user, scope=ReviewScope(dataset=ds)).example_id == examples[271].pk


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's queue function")
def test_postgresql_queue_moves_past_a_first_window_of_own_skips(reviewer_user):
    # The first window (32 ids) holds only examples the reviewer skipped: the claim comes from the next window, and
    # the skipped examples come back only once nothing else is left.
    ds, examples = factories.review_dataset(n=45)
    skipped_at = timezone.now() - timedelta(minutes=1)
    ReviewClaim.objects.bulk_create([ReviewClaim(example=ex, reviewer=reviewer_user, expires_at=skipped_at)
                                     for ex in examples[:40]])
    ReviewClaim.objects.filter(reviewer=reviewer_user).update(claimed_at=skipped_at)  # auto_now_add sets it to now
    key = api_token_create(user=reviewer_user, name="t", scope="write")[1]
    scope = ReviewScope(dataset_id=ds.pk)
    got = []
    for _ in range(6):
        claim = svc.review_claim_next_by_token(key=key, scope=scope)
        got.append(claim.card["id"])
        assert svc.review_submit_by_token(key=key, example=claim.card["id"], decision="approve") is not svc.DECLINED
    assert got == [ex.pk for ex in examples[40:45]] + [examples[0].pk]


def test_token_lookup_loads_the_user_it_names(reviewer_user, admin_user):
    from limrank_app.services import api_token_revoke, token_hash
    from limrank_app.api.authentication import api_token_lookup
    from limrank_app.roles import user_is_admin, user_is_reviewer

    reviewer_user.email = "r@example.org"
    reviewer_user.save()
    token, key = api_token_create(user=reviewer_user, name="t", scope="read")
    found, live, stale = api_token_lookup(token_hash(key))
    user = found.user
    assert (found.pk, found.scope, live, stale) == (token.pk, "read", True, True)
    assert (user.pk, user.username, user.is_active, user.is_superuser, user.is_staff) == (
        reviewer_user.pk, reviewer_user.username, True, False, reviewer_user.is_staff)
    assert user.email == "r@example.org"  # a deferred field loads when asked for
    assert user_is_reviewer(user) and not user_is_admin(user)
    admin_token = api_token_lookup(token_hash(api_token_create(user=admin_user, name="a")[1]))[0]
    assert user_is_admin(admin_token.user) and user_is_reviewer(admin_token.user)
    api_token_revoke(token=token)
    assert api_token_lookup(token_hash(key))[1] is False
    assert api_token_lookup(token_hash("lrs_not-a-token")) is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_postgresql_claim_waits_out_a_row_another_reviewer_is_claiming():
    # Overlap 2, one example: while another transaction holds the row lock (someone else's claim in progress),
    # SKIP LOCKED passes over it; the queue must not answer "nothing left" while a slot is still free.
    import threading
    import time

    from django.db import connections, transaction

    ds, [ex] = factories.review_dataset(n=1, reviews_required=2)
    reviewer = factories.reviewer()
    locked, release = threading.Event(), threading.Event()

    def hold_the_row():
        try:
            with transaction.atomic():
                Example.objects.select_for_update().get(pk=ex.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    assert locked.wait(10)
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    claim = svc.review_claim_next(reviewer=reviewer, scope=ReviewScope(dataset=ds))
    holder.join(10)
    assert claim is not None and claim.example_id == ex.pk
    assert time.monotonic() - started >= 0.15  # it did wait for the other transaction


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Kolkata"])
def test_datetime_out_is_drf_s_representation(zone):
    from datetime import datetime, timezone as dt_timezone
    from zoneinfo import ZoneInfo

    from rest_framework import serializers

    field = serializers.DateTimeField()
    values = [datetime(2026, 12, 2, 6, 35, 42, 743200, tzinfo=dt_timezone.utc), datetime(2026, 1, 1, tzinfo=dt_timezone.utc),
              datetime(2026, 7, 1, 12, 0, 0, 5, tzinfo=ZoneInfo("America/New_York"))]
    with timezone.override(ZoneInfo(zone)):
        for value in values:
            assert api._datetime_out(value) == field.to_representation(value)
