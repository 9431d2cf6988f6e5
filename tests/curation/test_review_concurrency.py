"""Many reviewers claiming and submitting at once, each on its own database connection (threads).
PostgreSQL: 50 reviewers, SELECT ... FOR UPDATE SKIP LOCKED. SQLite: the serialized (BEGIN IMMEDIATE) fallback."""
import threading
import time
from collections import Counter

import pytest
from django.db import connection

from curation.models import Example, Review, ReviewClaim
from curation.selectors.review import ReviewScope
from curation.services import review as svc
from tests import factories

FAST_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _in_threads(fn, reviewers):
    barrier = threading.Barrier(len(reviewers))
    results, errors = {}, []

    def work(reviewer):
        try:
            barrier.wait(timeout=60)
            results[reviewer.pk] = fn(reviewer)
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "a reviewer thread hung"
    assert errors == []
    return results


def _race(n_reviewers: int, n_examples: int, required: int):
    ds = factories.DatasetFactory(reviews_required=required)
    examples = factories.ExampleFactory.create_batch(n_examples, dataset=ds)
    reviewers = [factories.reviewer() for _ in range(n_reviewers)]
    scope = ReviewScope(dataset=ds)
    slots = n_examples * required

    # Round 1: everyone asks for an example at the same instant.
    first = _in_threads(lambda r: getattr(svc.review_claim_next(reviewer=r, scope=scope), "example_id", None), reviewers)
    claimed = [e for e in first.values() if e is not None]
    assert len(claimed) == min(n_reviewers, slots)
    per_example = Counter(claimed)
    assert max(per_example.values()) <= required  # never more reviewers than slots on one example
    db_claims = Counter(ReviewClaim.objects.values_list("example_id", flat=True))
    assert db_claims == per_example

    # Round 2: everyone works until the queue is empty; half approve, half reject.
    def work(reviewer):
        submitted, seen = 0, set()
        while True:
            claim = svc.review_claim_next(reviewer=reviewer, scope=scope)
            if claim is None:
                return submitted, seen
            assert claim.example_id not in seen, "the same example came back to its reviewer"
            seen.add(claim.example_id)
            svc.review_submit(reviewer=reviewer, example=claim.example_id,
                              decision="approve" if reviewer.pk % 2 else "reject",
                              reason_code=None if reviewer.pk % 2 else 1)
            submitted += 1

    done = _in_threads(work, reviewers)
    submitted = sum(n for n, _ in done.values())
    # Nothing lost, nothing doubled: every slot filled exactly once, by distinct reviewers.
    assert submitted == slots
    assert Review.objects.filter(undone=False, is_adjudication=False).count() == slots
    for ex in Example.objects.filter(pk__in=[e.pk for e in examples]):
        reviewers_of = list(Review.objects.filter(example=ex).values_list("reviewer_id", flat=True))
        assert len(reviewers_of) == len(set(reviewers_of)) == required == ex.reviews_done
        assert ex.status in (Example.Status.APPROVED, Example.Status.REJECTED, Example.Status.IN_ADJUDICATION)
    assert ReviewClaim.objects.count() == 0
    return done


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_reviewers_at_once_on_postgresql(settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    settings.PASSWORD_HASHERS = FAST_HASHER
    done = _race(n_reviewers=50, n_examples=30, required=3)
    assert sum(1 for n, _ in done.values() if n) > 10  # the work really was spread over many reviewers


@pytest.mark.django_db(transaction=True)
def test_concurrent_reviewers_on_sqlite(settings):
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite fallback")
    settings.PASSWORD_HASHERS = FAST_HASHER
    _race(n_reviewers=8, n_examples=10, required=2)


def _first_round_claims(n_reviewers: int, required: int, monkeypatch, *, locking: bool) -> Counter:
    """Everyone asks at once for the one example there is; the slot re-count is slowed down so that the race window
    is wide open. Returns claims per example."""
    ds, [ex] = factories.review_dataset(n=1, reviews_required=required)
    reviewers = [factories.reviewer() for _ in range(n_reviewers)]
    slot_free = svc.review_slot_free
    counted = threading.Barrier(n_reviewers)

    def slow_slot_free(**kwargs):
        if locking:
            time.sleep(0.2)
            return slot_free(**kwargs)
        # Unlocked, nothing orders the claimers: hold each after its count until all have counted, so the race
        # happens on every run however slowly the threads start (on a loaded CI machine they may not overlap).
        free = slot_free(**kwargs)
        try:
            counted.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass
        return free

    monkeypatch.setattr(svc, "review_slot_free", slow_slot_free)
    if not locking:
        monkeypatch.setattr(svc, "_locking", lambda qs, wait: qs)
    _in_threads(lambda r: getattr(svc.review_claim_next(reviewer=r, scope=ReviewScope(dataset=ds)), "example_id", None),
                reviewers)
    return Counter(ReviewClaim.objects.values_list("example_id", flat=True))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("locking", [True, False])
def test_the_row_lock_is_what_keeps_slots_single(settings, monkeypatch, locking):
    # The integrity test above has teeth: without SELECT ... FOR UPDATE SKIP LOCKED the same race hands one slot to
    # several reviewers.
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    settings.PASSWORD_HASHERS = FAST_HASHER
    claims = _first_round_claims(10, 2, monkeypatch, locking=locking)
    if locking:
        assert list(claims.values()) == [2]  # both slots taken (the later claimers waited), never a third
    else:
        assert max(claims.values()) > 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("required", [1, 2])
def test_the_same_submit_twice_at_once_stores_one_review(settings, required):
    # A double click, or two tabs: both submits reach the example's row lock at once. The second, granted the lock
    # after the first committed, reads the row and the claim as the first left them and is refused.
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    settings.PASSWORD_HASHERS = FAST_HASHER
    ds, [ex] = factories.review_dataset(n=1, reviews_required=required)
    reviewer = factories.reviewer()
    scope = ReviewScope(dataset=ds)
    assert svc.review_claim_next(reviewer=reviewer, scope=scope).example_id == ex.pk
    for _ in range(5):  # five races, each with a fresh claim
        barrier, answers = threading.Barrier(2), []

        def tab():
            try:
                barrier.wait(timeout=60)
                answers.append(svc.review_submit(reviewer=reviewer, example=ex.pk, decision="approve"))
            except svc.ReviewError as exc:
                answers.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=tab) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(answers) == 2 and sum(isinstance(a, svc.ReviewError) for a in answers) == 1, answers
        assert Review.objects.filter(example=ex, reviewer=reviewer, undone=False).count() == 1
        assert ReviewClaim.objects.count() == 0
        ex.refresh_from_db()
        assert ex.reviews_done == 1 and ex.status == ("approved" if required == 1 else "pending_review")
        Review.objects.filter(example=ex).delete()
        Example.objects.filter(pk=ex.pk).update(reviews_done=0, status="pending_review")
        assert svc.review_claim_next(reviewer=reviewer, scope=scope).example_id == ex.pk
