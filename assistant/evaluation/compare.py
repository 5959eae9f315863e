"""A/B of two models on the same test items (`assistant eval compare`): deltas with paired bootstrap intervals.

Both sides run every item through the whole dialogue manager (same index, same settings), so a
difference comes from the model. Per item, each metric of `eval answers` has a value where it is
defined (groundedness only for answered items, abstention only for unanswerable ones, ...); a pair is
compared where both sides have one, and the interval resamples those pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from assistant.dialogue.policies import ANSWER
from assistant.evaluation.bootstrap import paired_bootstrap
from assistant.evaluation.text_metrics import rouge_l, token_f1

Record = dict[str, Any]


def _answered(record: Record) -> bool:
    return record["decision"] == ANSWER


ITEM_METRICS: dict[str, Callable[[Record], float | None]] = {
    "answer_rate": lambda r: float(_answered(r)) if r["answerable"] else None,
    "abstention": lambda r: float(r["abstained"]) if not r["answerable"] else None,
    "groundedness": lambda r: r["groundedness"] if _answered(r) else None,
    "fallback_rate": lambda r: float(r["fallback"]) if _answered(r) else None,
    "fact_recall": lambda r: r["fact_recall"] if _answered(r) and r["answerable"] and r["reference"] else None,
    "wrong_fact_rate": lambda r: float(bool(r["wrong_facts"])) if _answered(r) else None,
    "token_f1": lambda r: token_f1(r["answer"], r["reference"]) if r["answerable"] and r["reference"] else None,
    "rouge_l": lambda r: rouge_l(r["answer"], r["reference"]) if r["answerable"] and r["reference"] else None,
    "latency_s": lambda r: r["latency_s"],
}
"""Each metric's value on one item (None where it is not defined), so that the mean over items is the
figure `eval answers` reports (latency: the mean, not the percentiles)."""
LOWER_IS_BETTER = frozenset({"fallback_rate", "wrong_fact_rate", "latency_s"})


def paired(records_a: Sequence[Record], records_b: Sequence[Record]) -> list[tuple[Record, Record]]:
    """The two runs' records matched by item id (both ran the same test set)."""
    by_id = {r["id"]: r for r in records_b}
    missing = [r["id"] for r in records_a if r["id"] not in by_id]
    if missing or len(records_a) != len(records_b):
        raise ValueError(f"the two runs hold different items (first missing: {missing[:3]})")
    return [(r, by_id[r["id"]]) for r in records_a]


def metric_deltas(pairs: Sequence[tuple[Record, Record]], *, seed: int = 0, samples: int = 10_000
                  ) -> dict[str, dict[str, Any]]:
    """Per metric: means of A and B over the items where both are defined, B - A, and its 95% interval."""
    deltas = {}
    for name, value in ITEM_METRICS.items():
        difference = paired_bootstrap([value(a) for a, _ in pairs], [value(b) for _, b in pairs],
                                      seed=seed, samples=samples)
        if difference is None:
            deltas[name] = {"n": 0, "a": None, "b": None, "delta": None, "ci95": None, "better": None}
            continue
        sign = -1 if name in LOWER_IS_BETTER else 1
        verdict = None
        if difference.significant:
            verdict = "b" if sign * difference.delta > 0 else "a"
        deltas[name] = {**difference.to_dict(), "better": verdict}
    return deltas


def differing_items(pairs: Sequence[tuple[Record, Record]], count: int = 10) -> list[dict[str, Any]]:
    """The items where the two answers differ most: a changed decision first, then the token-F1 gap."""
    def gap(pair: tuple[Record, Record]) -> float:
        a, b = pair
        f1 = [ITEM_METRICS["token_f1"](r) or 0.0 for r in pair]
        return (a["decision"] != b["decision"]) + abs(f1[1] - f1[0]) + (a["answer"] != b["answer"]) * 0.01

    ranked = sorted((pair for pair in pairs if pair[0]["answer"] != pair[1]["answer"]
                     or pair[0]["decision"] != pair[1]["decision"]), key=gap, reverse=True)
    return [{"id": a["id"], "question": a["question"], "reference": a["reference"],
             "a": {"decision": a["decision"], "answer": a["answer"]},
             "b": {"decision": b["decision"], "answer": b["answer"]}} for a, b in ranked[:count]]


def compare_runs(name_a: str, records_a: Sequence[Record], name_b: str, records_b: Sequence[Record], *,
                 seed: int = 0) -> dict[str, Any]:
    """The `eval compare` result: `n`, the two names, per-metric `deltas` (B - A), the most `differing` items."""
    pairs = paired(records_a, records_b)
    return {"n": len(pairs), "a": name_a, "b": name_b, "seed": seed,
            "deltas": metric_deltas(pairs, seed=seed), "differing": differing_items(pairs)}
