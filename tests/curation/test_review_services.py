"""Review services: claim slots, submit, settle, skip, undo, edit as revision, adjudicate, bulk decide."""
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from curation.hashing import example_content_hash
from curation.models import Example, ExampleRevision, Review, ReviewClaim
from curation.selectors.review import ReviewScope
from curation.services import review as svc
from tests import factories

pytestmark = pytest.mark.django_db


def scope(ds):
    return ReviewScope(dataset=ds)


def test_claim_holds_a_slot_and_resumes():
    ds, examples = factories.review_dataset(n=3, claim_minutes=10)
    rita = factories.reviewer()
    now = timezone.now()
    claim = svc.review_claim_next(reviewer=rita, scope=scope(ds), now=now)
    assert claim.example_id == examples[0].pk
    assert claim.expires_at == now + timedelta(minutes=10)
    # Asking again (a reload) gives the same example back, not a second one.
    again = svc.review_claim_next(reviewer=rita, scope=scope(ds), now=now + timedelta(minutes=1))
    assert again.example_id == claim.example_id
    assert ReviewClaim.objects.filter(reviewer=rita).count() == 1


def test_deleting_an_example_or_a_reviewer_deletes_their_claims():
    # A claim's foreign keys have no constraint in the database (migration 0009): Django's cascade removes them.
    ds, examples = factories.review_dataset(n=2)
    rita, sam = factories.reviewer(), factories.reviewer()
    held = svc.review_claim_next(reviewer=rita, scope=scope(ds))
    other = svc.review_claim_next(reviewer=sam, scope=scope(ds))
    Example.objects.filter(pk=held.example_id).delete()
    assert list(ReviewClaim.objects.values_list("pk", flat=True)) == [other.pk]
    sam.delete()
    assert not ReviewClaim.objects.exists()


def test_one_slot_goes_to_one_reviewer():
    ds, examples = factories.review_dataset(n=2, reviews_required=1)
    a, b, c = factories.reviewer(), factories.reviewer(), factories.reviewer()
    ca = svc.review_claim_next(reviewer=a, scope=scope(ds))
    cb = svc.review_claim_next(reviewer=b, scope=scope(ds))
    assert {ca.example_id, cb.example_id} == {e.pk for e in examples}
    assert svc.review_claim_next(reviewer=c, scope=scope(ds)) is None


def test_overlap_gives_each_example_to_n_distinct_reviewers():
    ds, [ex] = factories.review_dataset(n=1, reviews_required=2)
    a, b, c = factories.reviewer(), factories.reviewer(), factories.reviewer()
    assert svc.review_claim_next(reviewer=a, scope=scope(ds)).example_id == ex.pk
    assert svc.review_claim_next(reviewer=b, scope=scope(ds)).example_id == ex.pk
    assert svc.review_claim_next(reviewer=c, scope=scope(ds)) is None  # both slots held
    svc.review_submit(reviewer=a, example=ex, decision="approve")
    # a has reviewed it: never handed back to a, and c still finds no free slot (b holds the other).
    assert svc.review_claim_next(reviewer=a, scope=scope(ds)) is None
    assert svc.review_claim_next(reviewer=c, scope=scope(ds)) is None


def test_expired_claims_free_their_slot():
    ds, [ex] = factories.review_dataset(n=1, claim_minutes=5)
    a, b = factories.reviewer(), factories.reviewer()
    now = timezone.now()
    svc.review_claim_next(reviewer=a, scope=scope(ds), now=now)
    assert svc.review_claim_next(reviewer=b, scope=scope(ds), now=now + timedelta(minutes=4)) is None
    taken = svc.review_claim_next(reviewer=b, scope=scope(ds), now=now + timedelta(minutes=6))
    assert taken.example_id == ex.pk
    # a's claim expired and the slot went to b: a's late submit is refused, b's goes through.
    with pytest.raises(svc.ClaimExpired):
        svc.review_submit(reviewer=a, example=ex, decision="approve", now=now + timedelta(minutes=7))
    svc.review_submit(reviewer=b, example=ex, decision="reject", now=now + timedelta(minutes=7))
    ex.refresh_from_db()
    assert (ex.status, ex.reviews_done) == (Example.Status.REJECTED, 1)


def test_expired_claim_still_counts_when_nobody_took_the_slot():
    ds, [ex] = factories.review_dataset(n=1, claim_minutes=5)
    a = factories.reviewer()
    now = timezone.now()
    svc.review_claim_next(reviewer=a, scope=scope(ds), now=now)
    review = svc.review_submit(reviewer=a, example=ex, decision="approve", seconds_spent=9000, now=now + timedelta(minutes=30))
    assert review.seconds_spent <= 30 * 60 + 5  # bounded by the claim's age
    ex.refresh_from_db()
    assert ex.status == Example.Status.APPROVED


def test_submit_needs_your_own_claim():
    ds, [ex] = factories.review_dataset(n=1)
    owner, intruder = factories.reviewer(), factories.reviewer()
    svc.review_claim_next(reviewer=owner, scope=scope(ds))
    with pytest.raises(svc.ClaimMissing):
        svc.review_submit(reviewer=intruder, example=ex, decision="approve")
    with pytest.raises(svc.ClaimMissing):
        svc.review_skip(reviewer=intruder, example=ex)
    assert Review.objects.count() == 0
    assert ReviewClaim.objects.get(example=ex).reviewer == owner


def test_agreeing_reviews_settle_and_disagreement_goes_to_adjudication():
    ds, [agree, disagree] = factories.review_dataset(n=2, reviews_required=2)
    a, b = factories.reviewer(), factories.reviewer()
    for reviewer, decisions in ((a, {agree.pk: "approve", disagree.pk: "approve"}), (b, {agree.pk: "approve", disagree.pk: "reject"})):
        for _ in range(2):
            claim = svc.review_claim_next(reviewer=reviewer, scope=scope(ds))
            svc.review_submit(reviewer=reviewer, example=claim.example_id, decision=decisions[claim.example_id],
                              reason_code=2 if decisions[claim.example_id] == "reject" else None)
    agree.refresh_from_db()
    disagree.refresh_from_db()
    assert (agree.status, agree.reviews_done) == (Example.Status.APPROVED, 2)
    assert (disagree.status, disagree.reviews_done) == (Example.Status.IN_ADJUDICATION, 2)
    assert Review.objects.get(example=disagree, reviewer=b).reason == "Query is unnatural or off-persona"

    admin = factories.admin()
    with pytest.raises(PermissionDenied):
        svc.example_adjudicate(admin=a, example=disagree, decision="reject")
    with pytest.raises(svc.ReviewError):
        svc.example_adjudicate(admin=admin, example=agree, decision="reject")
    verdict = svc.example_adjudicate(admin=admin, example=disagree, decision="reject", reason="passage is off")
    assert verdict.is_adjudication
    disagree.refresh_from_db()
    assert disagree.status == Example.Status.REJECTED
    # An adjudicated example cannot be reopened by a reviewer's undo.
    with pytest.raises(svc.ReviewError):
        svc.review_undo_last(reviewer=b, scope=scope(ds))


def test_bad_decisions_are_refused_with_the_field_named():
    ds, [ex] = factories.review_dataset(n=1)
    a = factories.reviewer()
    svc.review_claim_next(reviewer=a, scope=scope(ds))
    with pytest.raises(ValidationError) as err:
        svc.review_submit(reviewer=a, example=ex, decision="maybe")
    assert "decision" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        svc.review_submit(reviewer=a, example=ex, decision="reject", reason_code=9)
    assert "reason_code" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        svc.review_submit(reviewer=a, example=ex, decision="approve", edits={"status": "approved"})
    assert "status" in err.value.message_dict
    # The failed edit rolled the whole submit back.
    assert Review.objects.count() == 0
    assert ReviewClaim.objects.filter(reviewer=a, example=ex).exists()


def test_skip_puts_the_example_last():
    ds, examples = factories.review_dataset(n=3)
    a = factories.reviewer()
    first = svc.review_claim_next(reviewer=a, scope=scope(ds))
    svc.review_skip(reviewer=a, example=first.example_id)
    with pytest.raises(svc.ClaimMissing):
        svc.review_skip(reviewer=a, example=first.example_id)  # already skipped: nothing held
    seen = []
    for _ in range(3):
        claim = svc.review_claim_next(reviewer=a, scope=scope(ds))
        seen.append(claim.example_id)
        svc.review_submit(reviewer=a, example=claim.example_id, decision="approve")
    assert seen == [examples[1].pk, examples[2].pk, examples[0].pk]


def test_skipped_slot_is_free_for_others():
    ds, [ex] = factories.review_dataset(n=1)
    a, b = factories.reviewer(), factories.reviewer()
    svc.review_claim_next(reviewer=a, scope=scope(ds))
    svc.review_skip(reviewer=a, example=ex)
    assert svc.review_claim_next(reviewer=b, scope=scope(ds)).example_id == ex.pk


def test_edit_is_a_revision_and_undo_reverts_it():
    ds, [ex, other] = factories.review_dataset(n=2)
    a = factories.reviewer()
    claim = svc.review_claim_next(reviewer=a, scope=scope(ds))
    assert claim.example_id == ex.pk
    old_query, old_trace, old_hash = ex.query.text, ex.reasoning_trace, ex.content_hash
    review = svc.review_submit(reviewer=a, example=ex, decision="approve", seconds_spent=4.5,
                               edits={"query": "  how long should I boil an egg for a soft yolk  ", "trace": "Edited trace.",
                                      "label": "true"})
    revision = ExampleRevision.objects.get(review=review)
    assert revision.changes == {"query": {"old": old_query, "new": "how long should I boil an egg for a soft yolk"},
                                "reasoning_trace": {"old": old_trace, "new": "Edited trace."}}  # label unchanged: not recorded
    assert review.edits == {"query": "how long should I boil an egg for a soft yolk", "reasoning_trace": "Edited trace."}
    assert review.seconds_spent == pytest.approx(4.5)
    ex.refresh_from_db()
    assert ex.query.text == "how long should I boil an egg for a soft yolk"
    assert ex.content_hash == example_content_hash(query=ex.query.text, passage=ex.passage.text, label=True)
    assert ex.content_hash != old_hash

    undone = svc.review_undo_last(reviewer=a, scope=scope(ds))
    assert undone.pk == review.pk
    ex.refresh_from_db()
    ex.query.refresh_from_db()
    assert (ex.query.text, ex.reasoning_trace, ex.content_hash) == (old_query, old_trace, old_hash)
    assert (ex.status, ex.reviews_done) == (Example.Status.PENDING_REVIEW, 0)
    assert Review.objects.get(pk=review.pk).undone
    # The example is claimed for a again and comes back first.
    assert svc.review_claim_next(reviewer=a, scope=scope(ds)).example_id == ex.pk
    again = svc.review_submit(reviewer=a, example=ex, decision="reject", reason_code=1)
    assert Review.objects.filter(example=ex, reviewer=a).count() == 2
    assert Review.objects.filter(example=ex, reviewer=a, undone=False).get().pk == again.pk
    ex.refresh_from_db()
    assert ex.status == Example.Status.REJECTED
    assert other.pk != ex.pk


def test_edit_that_duplicates_another_example_is_refused():
    ds, [ex, twin] = factories.review_dataset(n=2)
    a = factories.reviewer()
    svc.review_claim_next(reviewer=a, scope=scope(ds))
    with pytest.raises(ValidationError, match="duplicate"):
        svc.review_submit(reviewer=a, example=ex, decision="approve",
                          edits={"query": twin.query.text, "passage": twin.passage.text})
    ex.refresh_from_db()
    assert ex.status == Example.Status.PENDING_REVIEW and Review.objects.count() == 0


def test_undo_of_a_disagreement_reopens_the_example():
    ds, [ex] = factories.review_dataset(n=1, reviews_required=2)
    a, b = factories.reviewer(), factories.reviewer()
    for r, d in ((a, "approve"), (b, "reject")):
        svc.review_claim_next(reviewer=r, scope=scope(ds))
        svc.review_submit(reviewer=r, example=ex, decision=d, reason_code=1 if d == "reject" else None)
    ex.refresh_from_db()
    assert ex.status == Example.Status.IN_ADJUDICATION
    svc.review_undo_last(reviewer=b, scope=scope(ds))
    ex.refresh_from_db()
    assert (ex.status, ex.reviews_done) == (Example.Status.PENDING_REVIEW, 1)
    svc.review_submit(reviewer=b, example=ex, decision="approve")
    ex.refresh_from_db()
    assert ex.status == Example.Status.APPROVED
    assert svc.review_undo_last(reviewer=factories.reviewer(), scope=scope(ds)) is None


def test_generation_run_scope_uses_each_examples_dataset_overlap():
    run = factories.GenerationRunFactory()
    ds2 = factories.DatasetFactory(reviews_required=2)
    ex_two = factories.ExampleFactory(dataset=ds2, generation_run=run)
    ex_one = factories.ExampleFactory(dataset=None, generation_run=run)
    factories.ExampleFactory(dataset=ds2)  # not in the run
    s = ReviewScope(run=run)
    a, b, c = factories.reviewer(), factories.reviewer(), factories.reviewer()
    got = []
    for r in (a, b, c):
        claim = svc.review_claim_next(reviewer=r, scope=s)
        got.append(claim and claim.example_id)
    # ex_two takes two reviewers, ex_one one; nothing from outside the run.
    assert sorted(got) == sorted([ex_two.pk, ex_two.pk, ex_one.pk])


def test_bulk_decide_a_filtered_set():
    ds, examples = factories.review_dataset(n=4)
    generated = factories.ExampleFactory(dataset=ds, status=Example.Status.GENERATED)
    a, admin = factories.reviewer(), factories.admin()
    claim = svc.review_claim_next(reviewer=a, scope=scope(ds))
    with pytest.raises(PermissionDenied):
        svc.examples_bulk_decide(admin=a, examples=Example.objects.filter(dataset=ds), decision="approve")
    n = svc.examples_bulk_decide(admin=admin, examples=Example.objects.filter(dataset=ds).exclude(pk=examples[3].pk),
                                 decision="reject", reason="bad batch")
    assert n == 3
    assert set(Example.objects.filter(status=Example.Status.REJECTED).values_list("pk", flat=True)) == {e.pk for e in examples[:3]}
    assert Review.objects.filter(is_adjudication=True, decision="reject", reason="bad batch").count() == 3
    assert not ReviewClaim.objects.filter(pk=claim.pk).exists()
    generated.refresh_from_db()
    assert generated.status == Example.Status.GENERATED
    # Idempotent: deciding the same set again changes nothing.
    assert svc.examples_bulk_decide(admin=admin, examples=Example.objects.filter(dataset=ds).exclude(pk=examples[3].pk),
                                    decision="reject") == 0


def test_users_without_a_role_cannot_claim():
    ds, _ = factories.review_dataset(n=1)
    nobody = factories.UserFactory()
    with pytest.raises(PermissionDenied):
        svc.review_claim_next(reviewer=nobody, scope=scope(ds))
