"""The review queue's two hot writes as PostgreSQL functions: one round trip per request.

`limrank_review_claim_next` and `limrank_review_submit` do what curation.services.review does in Python
(the path SQLite and other databases take), statement for statement, so the locking argument is the same:
the candidate row is locked with FOR UPDATE SKIP LOCKED, then the slots are re-counted in a *new* statement
(in PL/pgSQL every statement of a VOLATILE function takes a fresh snapshot under READ COMMITTED), which sees
every claim committed before the row lock was granted. The whole test suite runs on both paths.

The SQL lives here, frozen with the migration; a later change is a new migration with CREATE OR REPLACE.
"""
from django.db import migrations, models

CLAIM_NEXT = r"""
CREATE OR REPLACE FUNCTION limrank_review_claim_next(
    p_reviewer bigint, p_kind text, p_scope bigint, p_now timestamptz, p_default_minutes integer)
RETURNS TABLE (
    outcome text, claim_id bigint, claimed_at timestamptz, expires_at timestamptz,
    example_id bigint, dataset_id bigint, query text, instruction text, persona text, variant text, domain text,
    passage_title text, passage text, intended_label boolean, reasoner_judgment boolean, judgment_votes jsonb,
    reasoning_trace text, origin text)
LANGUAGE plpgsql VOLATILE
SET jit = off  -- the candidate query's estimate is large (LIMIT 1 over a filtered scan); JIT would cost 100+ ms
AS $fn$
#variable_conflict use_column
DECLARE
    v_required integer;   -- NULL for a generation-run scope: each example's dataset decides
    v_req integer;
    v_minutes integer;
    v_expires timestamptz;
    v_claim bigint;
    v_example bigint;
    v_after bigint;
    v_window bigint[];
    v_pass integer;
    v_try integer;
BEGIN
    IF p_kind = 'dataset' THEN
        SELECT d.reviews_required, d.claim_minutes INTO v_required, v_minutes FROM curation_dataset d WHERE d.id = p_scope;
        IF NOT FOUND THEN
            outcome := 'no_scope'; RETURN NEXT; RETURN;
        END IF;
        v_required := COALESCE(NULLIF(v_required, 0), 1);
    ELSE
        SELECT d.claim_minutes INTO v_minutes
        FROM curation_generationrun r LEFT JOIN curation_dataset d ON d.id = r.dataset_id WHERE r.id = p_scope;
        IF NOT FOUND THEN
            outcome := 'no_scope'; RETURN NEXT; RETURN;
        END IF;
    END IF;
    v_expires := p_now + make_interval(mins => COALESCE(NULLIF(v_minutes, 0), p_default_minutes));

    -- The reviewer's own unexpired claim on an example that still needs their decision comes back first.
    SELECT c.id, c.example_id INTO v_claim, v_example
    FROM curation_reviewclaim c JOIN curation_example e ON e.id = c.example_id
    WHERE c.reviewer_id = p_reviewer AND c.expires_at > p_now AND e.status = 'pending_review'
      AND ((p_kind = 'dataset' AND e.dataset_id = p_scope) OR (p_kind <> 'dataset' AND e.generation_run_id = p_scope))
      AND NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = c.example_id AND r.reviewer_id = p_reviewer
                      AND NOT r.undone AND NOT r.is_adjudication)
    ORDER BY c.claimed_at DESC, c.id DESC LIMIT 1;
    IF FOUND THEN
        UPDATE curation_reviewclaim SET expires_at = v_expires WHERE id = v_claim;
    ELSE
        v_claim := NULL;
        -- SKIP LOCKED passes over rows other reviewers are claiming at this instant, even when a slot would be
        -- left for this reviewer (overlap > 1) or their claim fails: when nothing was found but an example still shows
        -- a free slot, try again once those short claim transactions are over (a new statement sees their claims).
        <<tries>>
        FOR v_try IN 1..50 LOOP
            <<passes>>
            -- Candidates come in windows of pending ids, read from the pending-only partial index (example_pending_*_idx),
            -- so a claim costs the same at the end of a million-example queue as at its start; left to itself the
            -- planner walks the primary key past every example already reviewed. The filters then run on the window.
            FOR v_pass IN 0..1 LOOP  -- 0: not skipped by this reviewer; 1: skipped ones too, after everything else
                v_after := 0;
                LOOP
                    -- Ids only: an index-only scan of the partial index, whatever the statistics say.
                    IF p_kind = 'dataset' THEN
                        v_window := ARRAY(SELECT x.id FROM curation_example x WHERE x.dataset_id = p_scope
                                          AND x.status = 'pending_review' AND x.id > v_after ORDER BY x.id LIMIT 256);
                    ELSE
                        v_window := ARRAY(SELECT x.id FROM curation_example x WHERE x.generation_run_id = p_scope
                                          AND x.status = 'pending_review' AND x.id > v_after ORDER BY x.id LIMIT 256);
                    END IF;
                    EXIT WHEN cardinality(v_window) = 0;
                    SELECT e.id INTO v_example FROM curation_example e
                    WHERE e.id = ANY (v_window) AND e.status = 'pending_review'
                      -- At the front of a busy queue most rows are held by others: a hashed set of the examples whose
                      -- slots others' live claims fill (built once per statement) rules them out before any per-row work.
                      AND e.id NOT IN (SELECT c.example_id FROM curation_reviewclaim c WHERE c.expires_at > p_now
                                       AND c.reviewer_id <> p_reviewer GROUP BY c.example_id HAVING count(*) >= COALESCE(v_required, 32767))
                      AND (SELECT count(*) FROM curation_reviewclaim c WHERE c.example_id = e.id AND c.expires_at > p_now
                           AND c.reviewer_id <> p_reviewer) + e.reviews_done
                          < COALESCE(v_required, NULLIF((SELECT d.reviews_required FROM curation_dataset d WHERE d.id = e.dataset_id), 0), 1)
                      AND NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = e.id AND r.reviewer_id = p_reviewer
                                      AND NOT r.undone AND NOT r.is_adjudication)
                      AND (v_pass = 1 OR NOT EXISTS (SELECT 1 FROM curation_reviewclaim s WHERE s.example_id = e.id
                                                     AND s.reviewer_id = p_reviewer AND s.expires_at <= s.claimed_at))
                    ORDER BY e.id LIMIT 1 FOR UPDATE OF e SKIP LOCKED;
                    IF NOT FOUND THEN  -- the whole window is taken, locked or done by this reviewer: the next window
                        v_after := v_window[cardinality(v_window)];
                        CONTINUE;
                    END IF;
                    IF v_required IS NOT NULL THEN
                        v_req := v_required;
                    ELSE
                        SELECT COALESCE(NULLIF(d.reviews_required, 0), 1) INTO v_req
                        FROM curation_example e LEFT JOIN curation_dataset d ON d.id = e.dataset_id WHERE e.id = v_example;
                    END IF;
                    -- A new statement under the row lock: it sees every claim committed before the lock was granted.
                    INSERT INTO curation_reviewclaim (example_id, reviewer_id, claimed_at, expires_at)
                    SELECT e.id, p_reviewer, p_now, v_expires FROM curation_example e
                    WHERE e.id = v_example AND e.reviews_done + (SELECT count(*) FROM curation_reviewclaim c
                        WHERE c.example_id = e.id AND c.expires_at > p_now AND c.reviewer_id <> p_reviewer) < v_req
                    ON CONFLICT ON CONSTRAINT claim_example_reviewer_unique DO UPDATE SET claimed_at = excluded.claimed_at, expires_at = excluded.expires_at
                    RETURNING id INTO v_claim;
                    EXIT passes WHEN v_claim IS NOT NULL;
                    v_after := v_example;
                END LOOP;
            END LOOP;
            EXIT tries WHEN v_claim IS NOT NULL;
            IF p_kind = 'dataset' THEN
                PERFORM 1 FROM curation_example e
                WHERE e.dataset_id = p_scope AND e.status = 'pending_review'
                  AND (SELECT count(*) FROM curation_reviewclaim c WHERE c.example_id = e.id AND c.expires_at > p_now
                       AND c.reviewer_id <> p_reviewer) + e.reviews_done < v_required
                  AND NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = e.id AND r.reviewer_id = p_reviewer
                                  AND NOT r.undone AND NOT r.is_adjudication)
                LIMIT 1;
            ELSE
                PERFORM 1 FROM curation_example e
                WHERE e.generation_run_id = p_scope AND e.status = 'pending_review'
                  AND (SELECT count(*) FROM curation_reviewclaim c WHERE c.example_id = e.id AND c.expires_at > p_now
                       AND c.reviewer_id <> p_reviewer) + e.reviews_done
                      < COALESCE(NULLIF((SELECT d.reviews_required FROM curation_dataset d WHERE d.id = e.dataset_id), 0), 1)
                  AND NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = e.id AND r.reviewer_id = p_reviewer
                                  AND NOT r.undone AND NOT r.is_adjudication)
                LIMIT 1;
            END IF;
            EXIT tries WHEN NOT FOUND;  -- nothing left for this reviewer
            PERFORM pg_sleep(0.001 * v_try);
        END LOOP;
        IF v_claim IS NULL THEN
            outcome := 'empty'; RETURN NEXT; RETURN;
        END IF;
    END IF;

    RETURN QUERY
    SELECT 'claimed'::text, c.id, c.claimed_at, c.expires_at,
           e.id, e.dataset_id, q.text, q.instruction, pe.text, q.variant::text, q.domain::text,
           p.title::text, p.text, e.intended_label, e.reasoner_judgment, e.judgment_votes, e.reasoning_trace, e.origin::text
    FROM curation_reviewclaim c
    JOIN curation_example e ON e.id = c.example_id
    JOIN curation_generatedquery q ON q.id = e.query_id
    LEFT JOIN curation_persona pe ON pe.id = q.persona_id
    JOIN curation_passage p ON p.id = e.passage_id
    WHERE c.id = v_claim;
END
$fn$;
"""

SUBMIT = r"""
CREATE OR REPLACE FUNCTION limrank_review_submit(
    p_reviewer bigint, p_example bigint, p_decision text, p_reason text, p_reason_code integer,
    p_seconds double precision, p_now timestamptz)
RETURNS TABLE (outcome text, review_id bigint, seconds_spent double precision, example_status text)
LANGUAGE plpgsql VOLATILE AS $fn$
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
    SELECT e.status, e.reviews_done, COALESCE(NULLIF(d.reviews_required, 0), 1) INTO v_status, v_done, v_required
    FROM curation_example e LEFT JOIN curation_dataset d ON d.id = e.dataset_id
    WHERE e.id = p_example FOR UPDATE OF e;
    IF NOT FOUND THEN
        outcome := 'missing'; RETURN NEXT; RETURN;
    END IF;
    SELECT c.id, c.claimed_at, c.expires_at INTO v_claim, v_claimed_at, v_expires_at
    FROM curation_reviewclaim c WHERE c.example_id = p_example AND c.reviewer_id = p_reviewer;
    IF NOT FOUND OR v_expires_at <= v_claimed_at THEN  -- no claim, or a skip (a zero-length claim)
        outcome := 'no_claim'; RETURN NEXT; RETURN;
    END IF;
    IF v_status <> 'pending_review' THEN
        outcome := 'not_pending'; example_status := v_status; RETURN NEXT; RETURN;
    END IF;
    -- An expired claim still counts if nobody took its slot meanwhile.
    IF v_expires_at <= p_now AND v_done + (SELECT count(*) FROM curation_reviewclaim c WHERE c.example_id = p_example
            AND c.expires_at > p_now AND c.reviewer_id <> p_reviewer) >= v_required THEN
        outcome := 'expired'; RETURN NEXT; RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = p_example AND r.reviewer_id = p_reviewer
               AND NOT r.undone AND NOT r.is_adjudication) THEN
        outcome := 'duplicate'; RETURN NEXT; RETURN;
    END IF;
    -- A reviewer spending longer than the claim is idle, not reviewing; the claim's age bounds the figure.
    v_elapsed := GREATEST(0, EXTRACT(EPOCH FROM (p_now - v_claimed_at)));
    v_seconds := round((CASE WHEN p_seconds > 0 THEN LEAST(p_seconds, v_elapsed + 5.0) ELSE v_elapsed END)::numeric, 2);
    INSERT INTO curation_review (example_id, reviewer_id, decision, edits, reason, reason_code, seconds_spent,
                                 is_adjudication, undone, created_at)
    VALUES (p_example, p_reviewer, p_decision, '{}'::jsonb, p_reason, p_reason_code, v_seconds, false, false, p_now)
    RETURNING id INTO review_id;
    DELETE FROM curation_reviewclaim WHERE id = v_claim;
    v_done := v_done + 1;
    IF v_required = 1 THEN
        v_status := CASE WHEN p_decision = 'approve' THEN 'approved' ELSE 'rejected' END;
    ELSIF v_done < v_required THEN
        v_status := 'pending_review';
    ELSE
        SELECT count(DISTINCT r.decision), min(r.decision) INTO v_n_decisions, v_decision FROM curation_review r
        WHERE r.example_id = p_example AND NOT r.undone AND NOT r.is_adjudication;
        v_status := CASE WHEN v_n_decisions <> 1 THEN 'in_adjudication'
                         WHEN v_decision = 'approve' THEN 'approved' ELSE 'rejected' END;
    END IF;
    UPDATE curation_example SET reviews_done = v_done, status = v_status, updated_at = p_now WHERE id = p_example;
    outcome := 'ok'; example_status := v_status; seconds_spent := v_seconds;
    RETURN NEXT;
END
$fn$;
"""

DROP = [
    "DROP FUNCTION IF EXISTS limrank_review_claim_next(bigint, text, bigint, timestamptz, integer)",
    "DROP FUNCTION IF EXISTS limrank_review_submit(bigint, bigint, text, text, integer, double precision, timestamptz)",
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CLAIM_NEXT)
        schema_editor.execute(SUBMIT)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in DROP:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("curation", "0002_api_member_provenance")]

    operations = [
        migrations.AddIndex(
            model_name="example",
            index=models.Index(condition=models.Q(status="pending_review"), fields=["dataset", "id"], name="example_pending_dataset_idx"),
        ),
        migrations.AddIndex(
            model_name="example",
            index=models.Index(condition=models.Q(status="pending_review"), fields=["generation_run", "id"], name="example_pending_run_idx"),
        ),
        migrations.RunPython(create, drop, elidable=False),
    ]
