"""Fit an index's ranking weights on labelled dev questions and check them against single rankings.

`tune_ranking` gathers each dev question's candidates once, fits weights for a few penalty
strengths that pull them towards the best single ranking (ranking.fit_ranking), and keeps the one
with the best dev MRR among those that rank no dev group below the best single ranking (embedding
alone or BM25 alone) at hit@1, hit@5 or MRR; the default weights of ranking.py compete too. If
none qualifies, the best single ranking itself is kept, so tuning never makes retrieval worse on
its own dev data. The record, with every figure it was chosen on, goes in the index card under
`ranking`. Fit on a dev split only, never on the set you report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from knowledge.ranking import DEFAULT_WEIGHTS, RankingWeights, fit_ranking, scaled_single, single_feature

PENALTIES = (0.3, 1.0, 3.0, 10.0, 30.0)
"""L2 strengths tried; the dev figures choose among them."""
SINGLE_RANKINGS = ("dense", "keyword")
"""Features that alone are the plain embedding and plain BM25 rankings."""
METRICS = ("hit@1", "hit@5", "mrr")
MIN_QUESTIONS = 5
"""Fewer dev questions whose gold is among the candidates fit nothing (the default weights still compete)."""


@dataclass(frozen=True)
class DevQuestion:
    """One labelled dev question: the message, its conversation, its gold documents and its group."""

    text: str
    gold_doc_ids: frozenset[str]
    history: tuple[Mapping[str, str], ...] = ()
    group: str = "all"


@dataclass
class _Gathered:
    """A dev question's candidate features, which rows are gold, and each row's document id."""

    features: np.ndarray
    gold: np.ndarray
    doc_ids: list[str]
    group: str = "all"
    extra: dict[str, Any] = field(default_factory=dict)


def gather(retriever: Any, questions: Sequence[DevQuestion]) -> list[_Gathered]:
    """Each question's candidates and features, computed once for every weight tried."""
    gathered = []
    for question in questions:
        found = retriever.candidates(question.text, question.history)
        doc_ids = [retriever.index.chunks[p].doc_id for p in found.positions]
        gold = np.array([doc_id in question.gold_doc_ids for doc_id in doc_ids], dtype=bool)
        gathered.append(_Gathered(found.features, gold, doc_ids, question.group))
    return gathered


def ranked_doc_ids(item: _Gathered, weights: RankingWeights, depth: int = 20) -> list[str]:
    """The first `depth` distinct documents under `weights`, as `Retriever.search` returns them."""
    ranked: list[str] = []
    for row in np.argsort(-weights.score(item.features), kind="stable"):
        if item.doc_ids[row] not in ranked:
            ranked.append(item.doc_ids[row])
            if len(ranked) == depth:
                break
    return ranked


def first_gold_rank(item: _Gathered, weights: RankingWeights, depth: int = 20) -> int | None:
    """Rank (from 1, distinct documents) of the first gold document under `weights`, None past `depth`."""
    gold = {doc_id for doc_id, is_gold in zip(item.doc_ids, item.gold, strict=True) if is_gold}
    ranked = ranked_doc_ids(item, weights, depth)
    return next((rank for rank, doc_id in enumerate(ranked, start=1) if doc_id in gold), None)


def group_figures(items: Sequence[_Gathered], weights: RankingWeights) -> dict[str, dict[str, float]]:
    """hit@1, hit@5 and MRR (to rank 20) per group and for `all`."""
    ranks: dict[str, list[int | None]] = defaultdict(list)
    for item in items:
        rank = first_gold_rank(item, weights)
        ranks[item.group].append(rank)
        if item.group != "all":
            ranks["all"].append(rank)
    return {group: {"n": len(values),
                    "hit@1": float(np.mean([r is not None and r <= 1 for r in values])),
                    "hit@5": float(np.mean([r is not None and r <= 5 for r in values])),
                    "mrr": float(np.mean([1.0 / r if r else 0.0 for r in values]))}
            for group, values in sorted(ranks.items())}


def shortfalls(figures: Mapping[str, Mapping[str, float]], singles: Mapping[str, Mapping[str, Mapping[str, float]]]
               ) -> list[str]:
    """`group metric` for each dev group and metric where `figures` is below the best single ranking."""
    out = []
    for group, values in figures.items():
        for metric in METRICS:
            best = max(single[group][metric] for single in singles.values())
            if values[metric] < best - 1e-9:
                out.append(f"{group} {metric}")
    return out


def tune_ranking(retriever: Any, questions: Sequence[DevQuestion], source: str,
                 penalties: Sequence[float] = PENALTIES) -> dict[str, Any]:
    """Fit and choose ranking weights on `questions`; the record is stored in the retriever's index card."""
    record = choose_weights(gather(retriever, questions), source, penalties)
    retriever.index.card["ranking"] = record
    return record


def choose_weights(items: Sequence[_Gathered], source: str, penalties: Sequence[float] = PENALTIES) -> dict[str, Any]:
    """The card record of the best dev MRR among fits (and the default weights) that rank no dev
    group below a single ranking; the best single ranking when none qualifies.

    Fits are pulled towards the best single ranking (scaled to the dev likelihood), so a strong
    penalty gives that ranking back and a weak one trusts the dev data; on equal dev figures the
    stronger penalty wins.
    """
    singles = {name: group_figures(items, single_feature(name)) for name in SINGLE_RANKINGS}
    best_single = max(SINGLE_RANKINGS, key=lambda n: (singles[n]["all"]["mrr"], singles[n]["all"]["hit@5"]))
    queries = [(item.features, item.gold) for item in items]
    tried = [("default weights", -1.0, DEFAULT_WEIGHTS)]
    if sum(bool(item.gold.any()) for item in items) >= MIN_QUESTIONS:
        prior = scaled_single(queries, best_single)
        tried += [(f"fitted, l2={penalty} towards {best_single}", penalty,
                   fit_ranking(queries, l2=penalty, prior=prior)) for penalty in penalties]
    outcomes = []
    for name, preference, weights in tried:
        figures = group_figures(items, weights)
        outcomes.append({"name": name, "preference": preference, "weights": weights, "dev": figures,
                         "below_single": shortfalls(figures, singles)})
    qualified = [o for o in outcomes if not o["below_single"]]
    if qualified:
        chosen = max(qualified, key=lambda o: (o["dev"]["all"]["mrr"], o["dev"]["all"]["hit@5"], o["preference"]))
        kind = chosen["name"]
    else:
        chosen = {"weights": single_feature(best_single), "dev": singles[best_single]}
        kind = f"single ranking {best_single} (no fit ranked every dev group at least as well)"
    return {
        "weights": chosen["weights"].as_dict(), "chosen": kind, "fitted_on": source, "n": len(items),
        "dev": chosen["dev"], "dev_single": singles,
        "tried": [{"name": o["name"], "dev_all": o["dev"]["all"], "below_single": o["below_single"]} for o in outcomes],
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
