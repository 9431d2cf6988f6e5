"""The queue functions in fewer statements, and a claim's commit without waiting for the WAL flush.

Each statement a PL/pgSQL function runs pays for an executor start (opening the tables and their indexes, taking
their locks, building the plan's state) that pg_stat_statements does not even count; under the review bench's load
that start-up and the commit were 40% of PostgreSQL's CPU (perf). So:

- claim-next: the scope's settings and the reviewer's own live claim come in one statement; the new (or renewed) claim
  and the example's card in another (a data-modifying CTE). Four statements where there were seven.
- The candidate window leaves out the examples others' claims hold as the index is read (a hashed set of them), so
  the candidate statement no longer fetches and rejects each held row at the front of a busy queue, and the first
  window needs no count of live claims to be sized past them.
- submit: the example (locked) and the reviewer's claim in one statement; the review's insert, the claim's delete
  and the example's new status in one more. The checks that read other rows (an expired claim's slot, a second
  review of the same example) run only where they can fail. Two statements where there were seven.
- (With it, in curation.services.review: a claim that is a transaction of its own commits without waiting for the WAL
  flush. A claim is a lease that expires; a crash in the fraction of a second before the flush loses the claim, never
  a review: "next" claims again, and a submit, synchronous, flushes every WAL record before its own.)

Measured on the 1M-example bench database, 8 direct clients claiming and submitting while 42 other claims hold the
front of the queue (pg_stat_statements, migration 0007's functions -> these): a claim 1,419 -> 967 us and 353 -> 168
shared buffers, a submit 1,001 -> 687 us; bench/RESULTS.md (session 5) has the rest. The locking argument of migration 0003 is unchanged: the candidate is locked FOR UPDATE SKIP LOCKED
and the slots are re-counted by the next statement (the claim's insert), which sees every claim committed before
the row lock was granted. Settings as in migration 0007.
"""
from django.db import migrations

SETTINGS = """SET plan_cache_mode = force_generic_plan
SET enable_bitmapscan = off
SET enable_seqscan = off
SET jit = off"""

# The reviewer's own unexpired claim in the scope, on an example that still needs their decision.
_OWN_CLAIM = """(SELECT c.id FROM curation_reviewclaim c JOIN curation_example e ON e.id = c.example_id
             WHERE c.reviewer_id = p_reviewer AND c.expires_at > p_now AND e.status = 'pending_review' AND e.{column} = p_scope
               AND (e.reviews_done = 0 OR NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = c.example_id
                    AND r.reviewer_id = p_reviewer AND NOT r.undone AND NOT r.is_adjudication OFFSET 0))
             ORDER BY c.claimed_at DESC, c.id DESC LIMIT 1)"""


# What "next" answers: the claim (CTE c) and its example's card.
_CARD = """SELECT 'claimed'::text, c.id, c.claimed_at, c.expires_at,
               e.id, e.dataset_id, q.text, q.instruction, pe.text, q.variant::text, q.domain::text,
               p.title::text, p.text, e.intended_label, e.reasoner_judgment, e.judgment_votes, e.reasoning_trace, e.origin::text
        FROM c
        JOIN curation_example e ON e.id = c.example_id
        JOIN curation_generatedquery q ON q.id = e.query_id
        LEFT JOIN curation_persona pe ON pe.id = q.persona_id
        JOIN curation_passage p ON p.id = e.passage_id"""

# The next pending ids, less those whose slots others' live claims fill: at the front of a busy queue most rows are
# held, and a hashed set of them (built once per statement, from the claims alone) rules them out as the index is read,
# before the candidate statement fetches a row. Ids only: an index-only scan of the partial index.
_WINDOW = """ARRAY(SELECT x.id FROM curation_example x WHERE x.{column} = p_scope
                                          AND x.status = 'pending_review' AND x.id > v_after
                                          AND x.id NOT IN (SELECT c.example_id FROM curation_reviewclaim c WHERE c.expires_at > p_now
                                              AND c.reviewer_id <> p_reviewer GROUP BY c.example_id
                                              HAVING count(*) >= COALESCE(v_required, 32767))
                                          ORDER BY x.id LIMIT v_size)"""

_REVIEWS_REQUIRED = ("COALESCE(v_required, NULLIF((SELECT d.reviews_required FROM curation_dataset d "
                     "WHERE d.id = e.dataset_id), 0), 1)")

# "Anything left for this reviewer?": an example in the scope with a free slot they have not reviewed.
_ANY_FREE_SLOT = """1 FROM curation_example e
            WHERE e.{column} = p_scope AND e.status = 'pending_review'
              AND (SELECT count(*) FROM curation_reviewclaim c WHERE c.example_id = e.id AND c.expires_at > p_now
                   AND c.reviewer_id <> p_reviewer) + e.reviews_done < """ + _REVIEWS_REQUIRED + """
              AND (e.reviews_done = 0 OR NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = e.id AND r.reviewer_id = p_reviewer
                              AND NOT r.undone AND NOT r.is_adjudication OFFSET 0))
            LIMIT 1"""

CLAIM_NEXT = r"""
CREATE OR REPLACE FUNCTION limrank_review_claim_next(
    p_reviewer bigint, p_kind text, p_scope bigint, p_now timestamptz, p_default_minutes integer)
RETURNS TABLE (
    outcome text, claim_id bigint, claimed_at timestamptz, expires_at timestamptz,
    example_id bigint, dataset_id bigint, query text, instruction text, persona text, variant text, domain text,
    passage_title text, passage text, intended_label boolean, reasoner_judgment boolean, judgment_votes jsonb,
    reasoning_trace text, origin text)
LANGUAGE plpgsql VOLATILE
""" + SETTINGS + r"""
AS $fn$
#variable_conflict use_column
DECLARE
    v_required integer;   -- NULL for a generation-run scope: each example's dataset decides
    v_minutes integer;
    v_expires timestamptz;
    v_claim bigint;
    v_example bigint;
    v_after bigint;
    v_window bigint[];
    v_pass integer;
    v_try integer;
    v_size integer;
BEGIN
    IF p_kind = 'dataset' THEN
        SELECT COALESCE(NULLIF(d.reviews_required, 0), 1), d.claim_minutes, own.id
        INTO v_required, v_minutes, v_claim
        FROM curation_dataset d LEFT JOIN LATERAL """ + _OWN_CLAIM.format(column="dataset_id") + r""" own ON true
        WHERE d.id = p_scope;
    ELSE
        SELECT d.claim_minutes, own.id
        INTO v_minutes, v_claim
        FROM curation_generationrun r LEFT JOIN curation_dataset d ON d.id = r.dataset_id
        LEFT JOIN LATERAL """ + _OWN_CLAIM.format(column="generation_run_id") + r""" own ON true
        WHERE r.id = p_scope;
    END IF;
    IF NOT FOUND THEN
        outcome := 'no_scope'; RETURN NEXT; RETURN;
    END IF;
    v_expires := p_now + make_interval(mins => COALESCE(NULLIF(v_minutes, 0), p_default_minutes));

    IF v_claim IS NOT NULL THEN  -- the reviewer's own claim comes back first, renewed
        RETURN QUERY WITH c AS (UPDATE curation_reviewclaim SET expires_at = v_expires WHERE id = v_claim RETURNING *)
        """ + _CARD + r""";
        RETURN;
    END IF;

    -- SKIP LOCKED passes over rows other reviewers are claiming at this instant, even when a slot would be
    -- left for this reviewer (overlap > 1) or their claim fails: when nothing was found but an example still shows
    -- a free slot, try again once those short claim transactions are over (a new statement sees their claims).
    <<tries>>
    FOR v_try IN 1..50 LOOP
        -- Candidates come in windows of pending ids, read from the pending-only partial index (example_pending_*_idx),
        -- so a claim costs the same at the end of a million-example queue as at its start; left to itself the
        -- planner walks the primary key past every example already reviewed. The filters then run on the window.
        FOR v_pass IN 0..1 LOOP  -- 0: not skipped by this reviewer; 1: skipped ones too, after everything else
            v_after := 0;
            v_size := 32;  -- free ids only: the first is usually taken; more windows if locks or skips pass them over
            LOOP
                IF p_kind = 'dataset' THEN
                    v_window := """ + _WINDOW.format(column="dataset_id") + r""";
                ELSE
                    v_window := """ + _WINDOW.format(column="generation_run_id") + r""";
                END IF;
                EXIT WHEN cardinality(v_window) = 0;
                SELECT e.id INTO v_example FROM curation_example e
                WHERE e.id = ANY (v_window) AND e.status = 'pending_review'
                  AND (SELECT count(*) FROM curation_reviewclaim c WHERE c.example_id = e.id AND c.expires_at > p_now
                       AND c.reviewer_id <> p_reviewer) + e.reviews_done < """ + _REVIEWS_REQUIRED + r"""
                  AND (e.reviews_done = 0 OR NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = e.id AND r.reviewer_id = p_reviewer
                                  AND NOT r.undone AND NOT r.is_adjudication OFFSET 0))
                  AND (v_pass = 1 OR NOT EXISTS (SELECT 1 FROM curation_reviewclaim s WHERE s.example_id = e.id
                                                 AND s.reviewer_id = p_reviewer AND s.expires_at <= s.claimed_at))
                ORDER BY e.id LIMIT 1 FOR UPDATE OF e SKIP LOCKED;
                IF NOT FOUND THEN  -- the whole window is taken, locked or done by this reviewer: the next window
                    v_after := v_window[cardinality(v_window)];
                    v_size := 256;
                    CONTINUE;
                END IF;
                -- A new statement under the row lock: it sees every claim committed before the lock was granted.
                -- It claims only if a slot is still free, and answers with the card when it did.
                RETURN QUERY WITH c AS (
                    INSERT INTO curation_reviewclaim (example_id, reviewer_id, claimed_at, expires_at)
                    SELECT e.id, p_reviewer, p_now, v_expires FROM curation_example e
                    WHERE e.id = v_example AND e.reviews_done + (SELECT count(*) FROM curation_reviewclaim c
                        WHERE c.example_id = e.id AND c.expires_at > p_now AND c.reviewer_id <> p_reviewer) < """ + _REVIEWS_REQUIRED + r"""
                    ON CONFLICT ON CONSTRAINT claim_example_reviewer_unique
                    DO UPDATE SET claimed_at = excluded.claimed_at, expires_at = excluded.expires_at
                    RETURNING *)
                """ + _CARD + r""";
                IF FOUND THEN
                    RETURN;
                END IF;
                v_after := v_example;
            END LOOP;
        END LOOP;
        IF p_kind = 'dataset' THEN
            PERFORM """ + _ANY_FREE_SLOT.format(column="dataset_id") + r""";
        ELSE
            PERFORM """ + _ANY_FREE_SLOT.format(column="generation_run_id") + r""";
        END IF;
        EXIT tries WHEN NOT FOUND;  -- nothing left for this reviewer
        PERFORM pg_sleep(0.001 * v_try);
    END LOOP;
    outcome := 'empty'; RETURN NEXT;
END
$fn$;
"""

SUBMIT = r"""
CREATE OR REPLACE FUNCTION limrank_review_submit(
    p_reviewer bigint, p_example bigint, p_decision text, p_reason text, p_reason_code integer,
    p_seconds double precision, p_now timestamptz)
RETURNS TABLE (outcome text, review_id bigint, seconds_spent double precision, example_status text)
LANGUAGE plpgsql VOLATILE
""" + SETTINGS + r"""
AS $fn$
#variable_conflict use_column
DECLARE
    v_status text;
    v_done integer;
    v_required integer;
    v_claim bigint;
    v_claimed_at timestamptz;
    v_expires_at timestamptz;
    v_elapsed double precision;
    v_n_decisions integer;
    v_decision text;
    v_seconds double precision;
BEGIN
    -- The example, locked, and the reviewer's claim on it. Only the reviewer's own requests change that claim, so
    -- reading it with the lock's statement is as good as after it.
    SELECT e.status, e.reviews_done, COALESCE(NULLIF(d.reviews_required, 0), 1), c.id, c.claimed_at, c.expires_at
    INTO v_status, v_done, v_required, v_claim, v_claimed_at, v_expires_at
    FROM curation_example e LEFT JOIN curation_dataset d ON d.id = e.dataset_id
    LEFT JOIN curation_reviewclaim c ON c.example_id = e.id AND c.reviewer_id = p_reviewer
    WHERE e.id = p_example FOR UPDATE OF e;
    IF NOT FOUND THEN
        outcome := 'missing'; RETURN NEXT; RETURN;
    END IF;
    IF v_claim IS NULL OR v_expires_at <= v_claimed_at THEN  -- no claim, or a skip (a zero-length claim)
        outcome := 'no_claim'; RETURN NEXT; RETURN;
    END IF;
    IF v_status <> 'pending_review' THEN
        outcome := 'not_pending'; example_status := v_status; RETURN NEXT; RETURN;
    END IF;
    -- An expired claim still counts if nobody took its slot meanwhile.
    IF v_expires_at <= p_now THEN
        IF v_done + (SELECT count(*) FROM curation_reviewclaim c WHERE c.example_id = p_example
                AND c.expires_at > p_now AND c.reviewer_id <> p_reviewer) >= v_required THEN
            outcome := 'expired'; RETURN NEXT; RETURN;
        END IF;
    END IF;
    IF v_done > 0 THEN  -- only an example with a live review can hold one of this reviewer's
        IF EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = p_example AND r.reviewer_id = p_reviewer
                   AND NOT r.undone AND NOT r.is_adjudication) THEN
            outcome := 'duplicate'; RETURN NEXT; RETURN;
        END IF;
    END IF;
    -- A reviewer spending longer than the claim is idle, not reviewing; the claim's age bounds the figure.
    v_elapsed := GREATEST(0, EXTRACT(EPOCH FROM (p_now - v_claimed_at)));
    v_seconds := round((CASE WHEN p_seconds > 0 THEN LEAST(p_seconds, v_elapsed + 5.0) ELSE v_elapsed END)::numeric, 2);
    v_done := v_done + 1;
    IF v_required = 1 THEN
        v_status := CASE WHEN p_decision = 'approve' THEN 'approved' ELSE 'rejected' END;
    ELSIF v_done < v_required THEN
        v_status := 'pending_review';
    ELSE  -- the last review: the decisions so far and this one agree, or the example goes to adjudication
        SELECT count(DISTINCT x.decision), min(x.decision) INTO v_n_decisions, v_decision
        FROM (SELECT r.decision FROM curation_review r WHERE r.example_id = p_example AND NOT r.undone AND NOT r.is_adjudication
              UNION ALL SELECT p_decision) x;
        v_status := CASE WHEN v_n_decisions <> 1 THEN 'in_adjudication'
                         WHEN v_decision = 'approve' THEN 'approved' ELSE 'rejected' END;
    END IF;
    WITH gone AS (DELETE FROM curation_reviewclaim WHERE id = v_claim),
         settled AS (UPDATE curation_example SET reviews_done = v_done, status = v_status, updated_at = p_now WHERE id = p_example)
    INSERT INTO curation_review (example_id, reviewer_id, decision, edits, reason, reason_code, seconds_spent,
                                 is_adjudication, undone, created_at)
    VALUES (p_example, p_reviewer, p_decision, '{}'::jsonb, p_reason, p_reason_code, v_seconds, false, false, p_now)
    RETURNING id INTO review_id;
    outcome := 'ok'; example_status := v_status; seconds_spent := v_seconds;
    RETURN NEXT;
END
$fn$;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CLAIM_NEXT)
        schema_editor.execute(SUBMIT)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        from importlib import import_module

        previous = import_module("curation.migrations.0007_review_generic_plans")
        schema_editor.execute(previous.claim_next_sql())
        schema_editor.execute(previous.submit_sql())


class Migration(migrations.Migration):
    dependencies = [("curation", "0007_review_generic_plans")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
