"""Training groups built from dataset-version member rows: pure Python, shared by the backbones that train on a
query's positives against its negatives (the bi-encoder's triples, the cross-encoder's listwise groups).

Rows are grouped by query (text + instruction, as the model reads it); a positive is a row labelled true, a negative
one labelled false. A query with fewer negatives than asked borrows from the other queries' negatives (seeded), so
every positive is used. Everything is deterministic in (rows, seed, namespace).
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from curation.protocol import passage_join, query_with_instruction


def query_passages(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[list[str], list[str]]]:
    """query -> (positive passages, negative passages), in the rows' order."""
    by_query: dict[str, tuple[list[str], list[str]]] = {}
    for row in rows:
        query = query_with_instruction(row["query_text"], row.get("instruction", ""))
        passage = passage_join(row.get("passage_title", ""), row["passage_text"])
        positives, negatives = by_query.setdefault(query, ([], []))
        (positives if row["label"] else negatives).append(passage)
    return by_query


def groups_rng(*, seed: int, namespace: str) -> random.Random:
    """The seeded stream of one backbone's grouping (its own namespace, so backbones do not share draws)."""
    return random.Random(f"{namespace}:{seed}")


def query_groups(by_query: dict[str, tuple[list[str], list[str]]], rng: random.Random, *, negatives: int | None,
                 backbone: str) -> list[tuple[str, str, list[str]]]:
    """[(query, positive, its negatives)] for every positive of every query, in the queries' order.

    `negatives=None`: all of the query's own negatives (seeded order), or one borrowed when it has none.
    `negatives=n`: n of them, the query's own first (a seeded choice when it has more), then borrowed ones
    that are neither its positives nor already in the group (seeded)."""
    pool = [n for _, negs in by_query.values() for n in negs]
    distinct = sorted(set(pool))
    distinct_set = set(distinct)
    out: list[tuple[str, str, list[str]]] = []
    for query, (positives, own_negatives) in by_query.items():
        if not positives:
            continue  # nothing to pull the query towards (its negatives still serve other queries' groups)
        own = list(own_negatives)
        rng.shuffle(own)
        if negatives is None:
            if not own:
                others = [n for n in pool if n not in positives]
                if not others:
                    raise ValueError(f"{backbone} needs at least one negative (label false) in the version")
                own = [rng.choice(others)]
            out.extend((query, positive, own) for positive in positives)
            continue
        for positive in positives:
            group = own[:negatives]
            if len(group) < negatives:
                excluded = set(positives) | set(group)
                available = len(distinct) - len(excluded & distinct_set)
                if available < negatives - len(group):
                    raise ValueError(f"{backbone} needs {negatives} negatives per positive; the version has "
                                     f"{available + len(group)} for one of its queries")
                while len(group) < negatives:  # rejection sampling: the pool may be large, the exclusions are few
                    candidate = rng.choice(distinct)
                    if candidate not in excluded:
                        group.append(candidate)
                        excluded.add(candidate)
            out.append((query, positive, group))
    if not out:
        raise ValueError(f"{backbone} needs at least one positive (label true) in the version")
    return out


def listwise_groups(rows: Sequence[dict[str, Any]], *, seed: int, group_size: int) -> list[dict[str, Any]]:
    """Member rows -> [{"query", "passages"}] with the positive first and `group_size - 1` negatives, in a seeded
    order: the groups of localized contrastive estimation (Gao, Dai & Callan, ECIR 2021)."""
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 (a positive and a negative), got {group_size}")
    rng = groups_rng(seed=seed, namespace="limrank-listwise")
    groups = [{"query": q, "passages": [p, *negs]}
              for q, p, negs in query_groups(query_passages(rows), rng, negatives=group_size - 1,
                                             backbone="the listwise loss")]
    rng.shuffle(groups)
    return groups
