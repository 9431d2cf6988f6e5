"""Blind review over the REST API: on a dataset that needs more than one review, a reviewer's view of examples
shows neither another reviewer's decisions (the `decision` filter) nor the review count; admins see both."""
from __future__ import annotations

import pytest

from curation.models import Example, Review
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed(api_reviewer):
    """A blind dataset (2 reviews each) and an open one (1 review), each with one example another reviewer approved."""
    other = factories.reviewer(username="other-reviewer")
    blind, (b_seen, b_mine, b_fresh) = factories.review_dataset(n=3, reviews_required=2)
    open_, (o_seen,) = factories.review_dataset(n=1, reviews_required=1)
    for ex in (b_seen, o_seen):
        Review.objects.create(example=ex, reviewer=other, decision="approve")
    Review.objects.create(example=b_mine, reviewer=api_reviewer, decision="approve")
    Example.objects.filter(pk__in=[b_seen.pk, o_seen.pk, b_mine.pk]).update(reviews_done=1)
    return {"blind": blind, "open": open_, "b_seen": b_seen, "b_mine": b_mine, "b_fresh": b_fresh, "o_seen": o_seen}


def _ids(client, query):
    r = client.get(f"/api/examples/?{query}")
    assert r.status_code == 200, r.content
    return {row["id"] for row in r.json()["results"]}


@pytest.mark.parametrize("who", ["reviewer", "reviewer_read_token"])
def test_reviewer_cannot_learn_another_reviewers_decision(principals, reviewed, who):
    c = principals[who].client
    blind = reviewed["blind"].pk
    # Only the reviewer's own approval counts on the blind dataset: the other reviewer's stays hidden.
    assert _ids(c, f"dataset={blind}&decision=approve") == {reviewed["b_mine"].pk}
    assert _ids(c, f"dataset={blind}&decision=reject") == set()
    # On a dataset reviewed once there is nothing to keep blind.
    assert _ids(c, f"dataset={reviewed['open'].pk}&decision=approve") == {reviewed["o_seen"].pk}
    detail = c.get(f"/api/examples/{reviewed['b_seen'].pk}/").json()
    assert detail["reviews_done"] is None
    listed = {row["id"]: row["reviews_done"] for row in c.get(f"/api/examples/?dataset={blind}").json()["results"]}
    assert set(listed.values()) == {None}
    assert c.get(f"/api/examples/{reviewed['o_seen'].pk}/").json()["reviews_done"] == 1


@pytest.mark.parametrize("who", ["admin", "read_token"])
def test_admin_sees_every_decision_and_count(principals, reviewed, who):
    c = principals[who].client
    blind = reviewed["blind"].pk
    assert _ids(c, f"dataset={blind}&decision=approve") == {reviewed["b_seen"].pk, reviewed["b_mine"].pk}
    assert c.get(f"/api/examples/{reviewed['b_seen'].pk}/").json()["reviews_done"] == 1
    assert c.get(f"/api/examples/{reviewed['b_fresh'].pk}/").json()["reviews_done"] == 0
