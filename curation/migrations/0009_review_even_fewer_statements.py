"""A new claim in three statements and a submit in one: each statement a function runs pays an executor start.

- claim-next: migration 0008 read each window of pending ids in a statement of its own, then locked a candidate among
  them in the next. Nearly every claim finds its candidate in the first window, so that window now rides in the
  candidate's statement (an init plan of it). A first window that yields nothing (all taken, locked at this instant,
  or done by this reviewer) is read again on its own, as before, to learn where the next one starts; only such a miss
  pays for the extra statement. The claim's insert and its card, the retry rule and the locking argument are 0008's
  (and 0003's) unchanged.
- submit: the common case (a live claim on a pending example nobody has reviewed yet) locks the example, reads the
  claim and writes the review, the claim's delete and the new status in one statement: the writes take their input
  from the locked row (a data-modifying CTE reads the lock's CTE), so they see the row as the lock granted it, as
  0008's second statement did. Any other case (an expired claim, a later review of an overlapping example, an error
  answer) continues from the row that statement locked and read, with 0008's checks and writes.
"""
from importlib import import_module

from django.db import migrations

previous = import_module("curation.migrations.0008_review_fewer_statements")

# The first free example among `ids` (an id array), locked; rows others are claiming at this instant are skipped.
_CANDIDATE = """SELECT e.id INTO v_example FROM curation_example e
                WHERE e.id = ANY ({ids}) AND e.status = 'pending_review'
                  AND (SELECT count(*) FROM curation_reviewclaim c WHERE c.example_id = e.id AND c.expires_at > p_now
                       AND c.reviewer_id <> p_reviewer) + e.reviews_done < """ + previous._REVIEWS_REQUIRED + """
                  AND (e.reviews_done = 0 OR NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = e.id AND r.reviewer_id = p_reviewer
                                  AND NOT r.undone AND NOT r.is_adjudication OFFSET 0))
                  AND (v_pass = 1 OR NOT EXISTS (SELECT 1 FROM curation_reviewclaim s WHERE s.example_id = e.id
                                                 AND s.reviewer_id = p_reviewer AND s.expires_at <= s.claimed_at))
                ORDER BY e.id LIMIT 1 FOR UPDATE OF e SKIP LOCKED"""


def _by_scope(template: str) -> str:
    """`template` for a dataset scope or a generation run's, chosen by p_kind (each keeps its own partial index)."""
    return (f"IF p_kind = 'dataset' THEN\n                    {template.format(column='dataset_id')};\n"
            f"                ELSE\n                    {template.format(column='generation_run_id')};\n                END IF;")


_LOOP_0008 = previous.CLAIM_NEXT[previous.CLAIM_NEXT.index("            LOOP\n"):previous.CLAIM_NEXT.index("                IF FOUND THEN\n                    RETURN;")]
_INSERT = _LOOP_0008[_LOOP_0008.index("                -- A new statement under the row lock"):]

_LOOP = r"""            v_window_apart := false;
            LOOP
                IF v_after = 0 AND NOT v_window_apart THEN  -- the first window, inside the candidate's statement
                    """ + _by_scope(_CANDIDATE.format(ids=previous._WINDOW)) + r"""
                    IF NOT FOUND THEN  -- read it on its own below, to learn where the next window starts
                        v_window_apart := true;
                        CONTINUE;
                    END IF;
                ELSE
                    """ + _by_scope("v_window := " + previous._WINDOW) + r"""
                    EXIT WHEN cardinality(v_window) = 0;
                    """ + _CANDIDATE.format(ids="v_window") + r""";
                    IF NOT FOUND THEN  -- the whole window is taken, locked or done by this reviewer: the next window
                        v_after := v_window[cardinality(v_window)];
                        v_size := 256;
                        CONTINUE;
                    END IF;
                END IF;
""" + _INSERT

CLAIM_NEXT = (previous.CLAIM_NEXT.replace("    v_size integer;\n", "    v_size integer;\n    v_window_apart boolean;\n", 1)
              .replace(_LOOP_0008, _LOOP, 1))


_LOCK_0008 = """    SELECT e.status, e.reviews_done, COALESCE(NULLIF(d.reviews_required, 0), 1), c.id, c.claimed_at, c.expires_at
    INTO v_status, v_done, v_required, v_claim, v_claimed_at, v_expires_at
    FROM curation_example e LEFT JOIN curation_dataset d ON d.id = e.dataset_id
    LEFT JOIN curation_reviewclaim c ON c.example_id = e.id AND c.reviewer_id = p_reviewer
    WHERE e.id = p_example FOR UPDATE OF e;
"""

# The seconds a review took, as 0008 computes them from v_elapsed (a double precision variable) and p_seconds.
_SECONDS = ("round((CASE WHEN p_seconds > 0 THEN LEAST(p_seconds, {elapsed} + 5.0) ELSE {elapsed} END)::numeric, 2)"
            "::double precision").format(elapsed="GREATEST(0, EXTRACT(EPOCH FROM (p_now - x.claimed_at)))::double precision")

_LOCK_AND_COMMON_CASE = """    -- The example, locked, and the reviewer's claim on it. Only the reviewer's own requests change that claim, so
    -- reading it with the lock's statement is as good as after it. In the common case (a live claim, a pending
    -- example nobody has reviewed yet: no duplicate possible, and no agreement to settle) the same statement writes.
    WITH x AS (
        SELECT e.status AS st, e.reviews_done AS done, COALESCE(NULLIF(d.reviews_required, 0), 1) AS req, c.id AS claim,
               c.claimed_at, c.expires_at
        FROM curation_example e LEFT JOIN curation_dataset d ON d.id = e.dataset_id
        LEFT JOIN curation_reviewclaim c ON c.example_id = e.id AND c.reviewer_id = p_reviewer
        WHERE e.id = p_example FOR UPDATE OF e),
    ok AS (
        SELECT x.claim, CASE WHEN x.req > 1 THEN 'pending_review' WHEN p_decision = 'approve' THEN 'approved'
                             ELSE 'rejected' END AS new_status, """ + _SECONDS + """ AS secs
        FROM x WHERE x.claim IS NOT NULL AND x.expires_at > x.claimed_at AND x.expires_at > p_now
          AND x.st = 'pending_review' AND x.done = 0),
    gone AS (DELETE FROM curation_reviewclaim WHERE id = (SELECT ok.claim FROM ok)),
    settled AS (UPDATE curation_example SET reviews_done = 1, status = ok.new_status, updated_at = p_now
                FROM ok WHERE curation_example.id = p_example),
    ins AS (INSERT INTO curation_review (example_id, reviewer_id, decision, edits, reason, reason_code, seconds_spent,
                                         is_adjudication, undone, created_at)
            SELECT p_example, p_reviewer, p_decision, '{}'::jsonb, p_reason, p_reason_code, ok.secs, false, false, p_now
            FROM ok RETURNING curation_review.id)
    SELECT x.st, x.done, x.req, x.claim, x.claimed_at, x.expires_at, ins.id, ok.new_status, ok.secs
    INTO v_status, v_done, v_required, v_claim, v_claimed_at, v_expires_at, review_id, example_status, seconds_spent
    FROM x LEFT JOIN ok ON true LEFT JOIN ins ON true;
    IF review_id IS NOT NULL THEN
        outcome := 'ok'; RETURN NEXT; RETURN;
    END IF;
"""

_COMMENT_0008 = """    -- The example, locked, and the reviewer's claim on it. Only the reviewer's own requests change that claim, so
    -- reading it with the lock's statement is as good as after it.
"""

assert _COMMENT_0008 + _LOCK_0008 in previous.SUBMIT
SUBMIT = previous.SUBMIT.replace(_COMMENT_0008 + _LOCK_0008, _LOCK_AND_COMMON_CASE, 1)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CLAIM_NEXT)
        schema_editor.execute(SUBMIT)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(previous.CLAIM_NEXT)
        schema_editor.execute(previous.SUBMIT)


class Migration(migrations.Migration):
    dependencies = [("curation", "0008_review_fewer_statements")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
