"""Choose and check the distance at which knowledge-gap questions are grouped (`assistant/evaluation/gaps.py`).

A good grouping puts questions with the same intent together. Banking77 (../shared/data) gives
labelled customer questions: the cut-off is chosen on samples of its *training* split (the one with
the best mean adjusted Rand index) and reported on samples of its test split, beside the baselines
"one group per question" and k-means told the true number of intents (an oracle the real system does
not have). Each sample imitates a gap list: `--intents` intents, `--per-intent` questions each.

`--json` prints one object on the last line.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.output import emit  # noqa: E402  (after the project root is on the path)

DATA = ROOT.parent / "shared" / "data" / "banking77"
log = logging.getLogger("benchmarks.knowledge_gaps")


def samples(path: Path, count: int, intents: int, per_intent: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """`count` samples of (texts, labels) drawn from a Banking77 CSV."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [(row["text"], row["category"]) for row in csv.DictReader(handle)]
    by_label: dict[str, list[str]] = {}
    for text, label in rows:
        by_label.setdefault(label, []).append(text)
    rng = np.random.default_rng(seed)
    drawn = []
    for _ in range(count):
        labels = rng.choice(sorted(by_label), size=intents, replace=False)
        texts, gold = [], []
        for label in labels:
            picked = rng.choice(len(by_label[label]), size=min(per_intent, len(by_label[label])), replace=False)
            texts += [by_label[label][i] for i in picked]
            gold += [str(label)] * len(picked)
        drawn.append((texts, gold))
    return drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--intents", type=int, default=15)
    parser.add_argument("--per-intent", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from assistant.config import load_settings
    from assistant.evaluation.gaps import CLUSTER_DISTANCE, cluster
    from knowledge.embedder import load_embedder

    embedder = load_embedder(load_settings().embedder)
    cut_offs = [round(0.30 + 0.05 * i, 2) for i in range(9)]

    def scores(split: str, seed: int) -> dict[str, float]:
        found: dict[str, list[float]] = {}
        for texts, gold in samples(DATA / f"{split}.csv", args.samples, args.intents, args.per_intent, seed):
            vectors = embedder.encode(texts)
            for cut in cut_offs:
                found.setdefault(str(cut), []).append(adjusted_rand_score(gold, cluster(vectors, cut)))
            found.setdefault("singletons", []).append(adjusted_rand_score(gold, list(range(len(texts)))))
            kmeans = KMeans(n_clusters=len(set(gold)), n_init=10, random_state=0).fit_predict(vectors)
            found.setdefault("kmeans_true_k", []).append(adjusted_rand_score(gold, kmeans))
        return {name: round(float(np.mean(values)), 4) for name, values in found.items()}

    train = scores("train", seed=0)
    best = max(cut_offs, key=lambda cut: train[str(cut)])
    test = scores("test", seed=1)
    test_ari = {"shipped": test[str(CLUSTER_DISTANCE)], "chosen": test[str(best)], "singletons": test["singletons"],
                "kmeans_true_k": test["kmeans_true_k"]}
    result = {"baseline": "kmeans_true_k", "chosen_on_train": best, "shipped": CLUSTER_DISTANCE,
              "train_ari": train, "test_ari": test_ari,
              "ari_ratio": round(test[str(CLUSTER_DISTANCE)] / test["kmeans_true_k"], 3)}
    emit(result, args.json, log)


if __name__ == "__main__":
    main()
