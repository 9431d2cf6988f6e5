"""Inter-annotator agreement computed in SQL (issue 21): the database groups the reviews; Python only combines a
handful of counts. The same figures as reading every review into Python did, at any number of reviews.

Decisions are binary (approve / reject), so every statistic follows from counts:
- Cohen's kappa of a reviewer pair: from their 2x2 table of decisions on the examples both decided;
- Krippendorff's alpha (nominal, two values) over the examples with two or more decisions: with a_u approvals and
  r_u rejections among the m_u decisions on example u, n = sum m_u, n_a = sum a_u, n_r = sum r_u:
      alpha = 1 - (n - 1) * sum_u (a_u * r_u / (m_u - 1)) / (n_a * n_r)
  (undefined when every decision is the same: n_a * n_r = 0);
- each reviewer's agreement with the consensus: the latest adjudication where there is one, else a strict majority
  of two or more decisions.
Live reviews only (not undone); adjudications are not votes."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection

# The live votes, restricted by a condition on the example (e) and/or the review (r).
_VOTES = """SELECT r.example_id AS example_id, r.reviewer_id AS reviewer_id, r.decision AS decision
            FROM curation_review r {join}
            WHERE r.undone = %s AND r.is_adjudication = %s AND {where}"""
_JOIN = "JOIN curation_example e ON e.id = r.example_id"


def _votes(where: str) -> str:
    """The live votes; joined to the examples only when the condition names them."""
    return _VOTES.format(join=_JOIN if "e." in where else "", where=where)
_UNITS = """SELECT example_id, COUNT(*) AS m, SUM(CASE WHEN decision = 'approve' THEN 1 ELSE 0 END) AS a
            FROM ({votes}) v GROUP BY example_id"""


def _where(*, dataset_id: int | None, example_ids_sql: tuple[str, list] | None) -> tuple[str, list]:
    if example_ids_sql is not None:
        sql, params = example_ids_sql
        return f"r.example_id IN ({sql})", list(params)
    if dataset_id is not None:
        return "e.dataset_id = %s", [dataset_id]
    return "1 = 1", []


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def agreement_alpha(*, dataset_id: int | None = None, example_ids_sql: tuple[str, list] | None = None) -> dict:
    """{"units": examples with >= 2 decisions, "unanimous": of them all alike, "reviewed": examples with a decision,
    "alpha": Krippendorff's alpha or None}."""
    where, params = _where(dataset_id=dataset_id, example_ids_sql=example_ids_sql)
    votes = _votes(where)
    units = _UNITS.format(votes=votes)
    (reviewed, n_units, unanimous, disagreement, n, n_a), = _rows(
        f"""SELECT COUNT(*),
                   SUM(CASE WHEN m >= 2 THEN 1 ELSE 0 END),
                   SUM(CASE WHEN m >= 2 AND (a = 0 OR a = m) THEN 1 ELSE 0 END),
                   SUM(CASE WHEN m >= 2 THEN a * (m - a) * 1.0 / (m - 1) ELSE 0 END),
                   SUM(CASE WHEN m >= 2 THEN m ELSE 0 END),
                   SUM(CASE WHEN m >= 2 THEN a ELSE 0 END)
            FROM ({units}) u""", [False, False, *params])
    n_units, unanimous, n, n_a = int(n_units or 0), int(unanimous or 0), int(n or 0), int(n_a or 0)
    n_r = n - n_a
    alpha = None
    if n_units and n_a * n_r > 0:
        alpha = 1 - (n - 1) * float(disagreement) / (n_a * n_r)
    return {"reviewed": int(reviewed or 0), "units": n_units, "unanimous": unanimous, "alpha": alpha}


def _kappa(aa: int, ar: int, ra: int, rr: int) -> float | None:
    n = aa + ar + ra + rr
    po = (aa + rr) / n
    pe = ((aa + ar) * (aa + ra) + (ra + rr) * (ar + rr)) / (n * n)
    return None if pe == 1 else (po - pe) / (1 - pe)


def agreement_figures(*, dataset_id: int | None = None) -> dict:
    """What curation.selectors.review.review_agreement reports: pairs (kappa, observed), alpha, units,
    per_reviewer agreement with the consensus, adjudicated examples."""
    where, params = _where(dataset_id=dataset_id, example_ids_sql=None)
    votes = _votes(where)
    base = [False, False, *params]

    tables: dict[tuple[int, int], dict[tuple[str, str], int]] = {}
    for a, b, da, db, n in _rows(
            f"""SELECT x.reviewer_id, y.reviewer_id, x.decision, y.decision, COUNT(*)
                FROM ({votes}) x JOIN ({votes}) y ON y.example_id = x.example_id AND x.reviewer_id < y.reviewer_id
                GROUP BY x.reviewer_id, y.reviewer_id, x.decision, y.decision""", base + base):
        tables.setdefault((a, b), {})[(da, db)] = n

    alpha = agreement_alpha(dataset_id=dataset_id)

    adjudication_where = "r.undone = %s AND r.is_adjudication = %s AND " + where
    latest_adjudication = f"""SELECT r.example_id AS example_id, r.decision AS decision
        FROM curation_review r {_JOIN if "e." in where else ""}
        WHERE {adjudication_where} AND r.id = (SELECT MAX(r2.id) FROM curation_review r2
                                                WHERE r2.example_id = r.example_id AND r2.undone = %s
                                                  AND r2.is_adjudication = %s)"""
    adjudication_params = [False, True, *params, False, True]
    (adjudicated,), = _rows(f"SELECT COUNT(*) FROM ({latest_adjudication}) j", adjudication_params)
    consensus = f"""SELECT u.example_id AS example_id,
               COALESCE(j.decision, CASE WHEN u.m >= 2 AND 2 * u.a > u.m THEN 'approve'
                                         WHEN u.m >= 2 AND 2 * (u.m - u.a) > u.m THEN 'reject' END) AS decision
        FROM ({_UNITS.format(votes=votes)}) u LEFT JOIN ({latest_adjudication}) j ON j.example_id = u.example_id"""
    # Every voter, with how many of their decisions have a consensus and how many agree with it.
    agree = {r: (n, k) for r, n, k in _rows(
        f"""SELECT v.reviewer_id, SUM(CASE WHEN c.decision IS NOT NULL THEN 1 ELSE 0 END),
                   SUM(CASE WHEN v.decision = c.decision THEN 1 ELSE 0 END)
            FROM ({votes}) v LEFT JOIN ({consensus}) c ON c.example_id = v.example_id
            GROUP BY v.reviewer_id""", base + base + adjudication_params)}
    reviewer_ids = sorted(agree)
    names = dict(get_user_model().objects.filter(pk__in=reviewer_ids).values_list("pk", "username"))
    pairs = []
    for (a, b), t in sorted(tables.items()):
        aa, ar = t.get(("approve", "approve"), 0), t.get(("approve", "reject"), 0)
        ra, rr = t.get(("reject", "approve"), 0), t.get(("reject", "reject"), 0)
        n = aa + ar + ra + rr
        kappa = _kappa(aa, ar, ra, rr)
        pairs.append({"a": names.get(a, a), "b": names.get(b, b), "n": n,
                      "kappa": None if kappa is None else round(kappa, 3), "observed": round((aa + rr) / n, 3)})

    per_reviewer = {}
    for r in reviewer_ids:
        n, k = agree.get(r, (0, 0))
        per_reviewer[names.get(r, r)] = {"n": int(n), "agree": int(k or 0), "rate": round(int(k) / n, 3) if n else None}
    return {"pairs": pairs, "alpha": None if alpha["alpha"] is None else round(alpha["alpha"], 3),
            "units": alpha["units"], "per_reviewer": per_reviewer, "adjudicated": int(adjudicated)}
