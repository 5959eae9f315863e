"""Calibrate retrieval confidence on a labelled dev set.

Confidence is a logistic function of the best dense similarity a question gets. Its midpoint and
slope are fitted (1-D logistic regression, Newton's method) on dev questions labelled answerable
or not, and stored in the index card, so a confidence of 0.5 is the dev set's decision boundary.
Fit on a dev split only, never on the set you report.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from knowledge.documents import KnowledgeError


def fit_logistic(similarities: Sequence[float], answerable: Sequence[bool], l2: float = 1e-3,
                 steps: int = 100) -> tuple[float, float]:
    """(midpoint, slope) of P(answerable | similarity) = 1 / (1 + exp(-slope * (similarity - midpoint)))."""
    x = np.asarray(similarities, dtype=np.float64)
    y = np.asarray(answerable, dtype=np.float64)
    if len(x) < 4 or y.min() == y.max():
        raise KnowledgeError("calibration needs at least 4 dev questions, both answerable and unanswerable ones")
    features = np.column_stack([np.ones_like(x), x])
    weights = np.zeros(2)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-features @ weights))
        gradient = features.T @ (p - y) + l2 * weights
        hessian = features.T @ (features * (p * (1 - p))[:, None]) + l2 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    bias, slope = weights
    if slope <= 0:
        raise KnowledgeError("dev questions that are answerable do not score higher than the rest: check the labels")
    return float(-bias / slope), float(slope)


def calibration_record(midpoint: float, slope: float, source: str, similarities: Sequence[float],
                       answerable: Sequence[bool]) -> dict[str, Any]:
    """What is stored in the index card: the parameters and where they came from."""
    predicted = np.asarray(similarities) >= midpoint
    truth = np.asarray(answerable, dtype=bool)
    return {
        "midpoint": round(midpoint, 6), "slope": round(slope, 6), "fitted_on": source, "n": int(len(truth)),
        "answerable": int(truth.sum()), "dev_accuracy": round(float((predicted == truth).mean()), 4),
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def calibrate(retriever: Any, questions: Sequence[tuple[str, Sequence[dict[str, str]], bool]], source: str,
              k: int = 3) -> dict[str, Any]:
    """Fit the retriever's index on (question, history, answerable) dev items; the record goes in its card."""
    similarities = []
    for text, history, _ in questions:
        hits = retriever.search(text, history=history, k=k)
        similarities.append(max((hit.similarity for hit in hits if hit.similarity is not None), default=-1.0))
    labels = [answerable for _, _, answerable in questions]
    midpoint, slope = fit_logistic(similarities, labels)
    record = calibration_record(midpoint, slope, source, similarities, labels)
    retriever.index.card["calibration"] = record
    return record
