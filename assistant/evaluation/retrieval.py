"""Retrieval metrics: hit@k, MRR and nDCG@10 over distinct documents (definitions in the README)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from assistant.evaluation.testsets import TestItem

Search = Callable[[TestItem, int], list[str]]
"""Returns the ranked, distinct document ids for an item, at most `depth` of them."""


def item_scores(ranked: Sequence[str], gold: set[str], ks: Sequence[int]) -> dict[str, float]:
    """hit@k for each k, reciprocal rank (0 past the deepest k) and nDCG@10 with binary relevance."""
    ranks = [rank for rank, doc_id in enumerate(ranked, start=1) if doc_id in gold]
    first = ranks[0] if ranks else None
    scores = {f"hit@{k}": float(first is not None and first <= k) for k in ks}
    scores["mrr"] = 1.0 / first if first and first <= max(ks) else 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank in ranks if rank <= 10)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), 10) + 1))
    scores["ndcg@10"] = dcg / ideal if ideal else 0.0
    return scores


def evaluate_retrieval(items: Sequence[TestItem], search: Search, ks: Sequence[int] = (1, 5, 20),
                       progress: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Summary (`n`, `hit@K`..., `mrr`, `ndcg@10`, `groups`) and one record per scored item."""
    ks = sorted(set(ks))
    depth = max(*ks, 10)
    records = []
    for item in tqdm(items, desc="retrieval", disable=not progress, leave=False):
        if not item.answerable or not item.gold_doc_ids:
            continue
        ranked = search(item, depth)
        scores = item_scores(ranked, set(item.gold_doc_ids), ks)
        records.append({"id": item.id, "question": item.question, "group": item.group,
                        "gold_doc_ids": list(item.gold_doc_ids), "retrieved": ranked[:depth], **scores})
    summary = summarise(records, ks)
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record["group"]:
            by_group[record["group"]].append(record)
    summary["groups"] = {group: summarise(rows, ks) for group, rows in sorted(by_group.items())}
    return summary, records


def summarise(records: Sequence[dict[str, Any]], ks: Sequence[int]) -> dict[str, Any]:
    """Mean of each metric over the records (None when there are none)."""
    keys = [*(f"hit@{k}" for k in ks), "mrr", "ndcg@10"]
    n = len(records)
    return {"n": n, **{key: (sum(r[key] for r in records) / n if n else None) for key in keys}}
