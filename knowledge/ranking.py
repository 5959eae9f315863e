"""Rank a query's candidate chunks with weights fitted on dev questions.

Candidates come from four rankings (embedding and BM25, each for the conversational query and for
the current message alone) and from the entity the conversation is about (entities.py). Each
candidate gets a few features that mean the same thing on any collection (similarities, the gap to
the best candidate, reciprocal ranks, BM25 relative to the best, entity focus, FAQ shape), and its
score is a weighted sum of them. The weights are fitted on labelled dev questions by listwise
logistic regression (the softmax over a question's candidates should put its mass on the gold
documents) and stored in the index card, like the confidence calibration. Fit on a dev split only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from knowledge.documents import Chunk, KnowledgeError

FEATURES = (
    "dense", "dense_text", "keyword", "keyword_text",
    "dense_rr", "dense_text_rr", "keyword_rr", "keyword_text_rr",
    "focus", "focus_dense_rr", "focus_keyword_rr",
    "question_shaped", "shape_dense_rr", "focus_shape_dense_rr", "focus_shape_keyword_rr", "length",
)
"""Names of the features, in column order (what each means: `candidate_features`)."""

_QUESTION_OPENING = re.compile(r"^[^.!?\n]{3,200}\?")


@dataclass(frozen=True)
class Signals:
    """Raw per-candidate scores of one query, before they become features."""

    dense: np.ndarray
    """Cosine similarity to the conversational query (history + message)."""
    dense_text: np.ndarray
    """Cosine similarity to the current message alone."""
    keyword: np.ndarray
    """BM25 score for the conversational query."""
    keyword_text: np.ndarray
    """BM25 score for the current message alone."""
    focus: np.ndarray
    """True for chunks of the entity the conversation is about."""


def question_shaped(chunk: Chunk) -> bool:
    """Whether a chunk opens with a question (an FAQ entry) rather than a statement."""
    return bool(_QUESTION_OPENING.match(chunk.text.lstrip()))


def candidate_features(signals: Signals, chunks: Sequence[Chunk]) -> np.ndarray:
    """The (candidates x FEATURES) matrix of one query.

    A constant shift within a query changes no ranking, so similarities enter as they are; BM25,
    whose scale depends on the collection and the query, enters relative to the best candidate.
    `_rr` features are reciprocal ranks (1 for the best, 0 outside the group ranked): overall, within
    the entity in focus, within candidates of the same shape (FAQ entries vs statements) and within
    the entity's candidates of that shape, so that the best FAQ entry and the best statement about
    the entity can both reach the top.
    """
    if not chunks:
        return np.zeros((0, len(FEATURES)))
    shaped = np.array([question_shaped(c) for c in chunks], dtype=bool)
    focus = signals.focus.astype(bool)

    def by_shape(scores: np.ndarray, within: np.ndarray, positive_only: bool = False) -> np.ndarray:
        return np.maximum(_reciprocal_rank(scores, within & shaped, positive_only),
                          _reciprocal_rank(scores, within & ~shaped, positive_only))

    everywhere = np.ones(len(chunks), dtype=bool)
    columns = [
        signals.dense, signals.dense_text, _relative(signals.keyword), _relative(signals.keyword_text),
        _reciprocal_rank(signals.dense),
        _reciprocal_rank(signals.dense_text),
        _reciprocal_rank(signals.keyword, positive_only=True),
        _reciprocal_rank(signals.keyword_text, positive_only=True),
        focus.astype(np.float64),
        _reciprocal_rank(signals.dense_text, focus),
        _reciprocal_rank(signals.keyword_text, focus, positive_only=True),
        shaped.astype(np.float64),
        by_shape(signals.dense_text, everywhere),
        by_shape(signals.dense_text, focus),
        by_shape(signals.keyword_text, focus, positive_only=True),
        np.log1p([len(c.text.split()) for c in chunks]) / 5.0,
    ]
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])


def _relative(scores: np.ndarray) -> np.ndarray:
    top = float(scores.max(initial=0.0))
    return scores / top if top > 0 else np.zeros_like(scores, dtype=np.float64)


def _reciprocal_rank(scores: np.ndarray, within: np.ndarray | None = None, positive_only: bool = False) -> np.ndarray:
    """1 / rank by `scores` (best = 1) among candidates in `within`; 0 outside it or for a zero score."""
    mask = np.ones(len(scores), dtype=bool) if within is None else within.astype(bool)
    if positive_only:
        mask = mask & (scores > 0)
    out = np.zeros(len(scores), dtype=np.float64)
    members = np.flatnonzero(mask)
    order = members[np.argsort(-scores[members], kind="stable")]
    out[order] = 1.0 / np.arange(1, len(order) + 1)
    return out


@dataclass(frozen=True)
class RankingWeights:
    """A linear score over FEATURES (only ranks within a query matter, so there is no bias)."""

    weights: tuple[float, ...]

    def score(self, features: np.ndarray) -> np.ndarray:
        """One score per candidate row."""
        return features @ np.asarray(self.weights, dtype=np.float64)

    def as_dict(self) -> dict[str, float]:
        """Feature name -> weight, for the index card."""
        return {name: round(float(w), 6) for name, w in zip(FEATURES, self.weights, strict=True)}

    @classmethod
    def from_dict(cls, weights: dict[str, float]) -> RankingWeights:
        """Weights from a card; a card written with other features is refused (refit it)."""
        if set(weights) != set(FEATURES):
            raise KnowledgeError("the index's ranking weights were fitted on other features: run `assistant kb tune`")
        return cls(tuple(float(weights[name]) for name in FEATURES))


def fit_ranking(queries: Sequence[tuple[np.ndarray, np.ndarray]], l2: float = 1.0, steps: int = 100,
                prior: RankingWeights | None = None) -> RankingWeights:
    """Weights maximising the mean over queries of log P(gold) under softmax(features @ w), with an L2
    penalty on their distance from `prior` (zero when None).

    `queries` holds (features, is_gold) per dev question; questions with no gold candidate say
    nothing about ranking and are skipped. Newton-like steps use the softmax covariance (positive
    definite with the penalty) as curvature, with a backtracking line search.
    """
    usable = _usable(queries)
    penalty = l2 / len(usable)
    centre = np.zeros(len(FEATURES)) if prior is None else np.asarray(prior.weights, dtype=np.float64)
    weights = centre.copy()
    loss, gradient, curvature = _objective(usable, weights, penalty, centre)
    for _ in range(steps):
        step = np.linalg.solve(curvature, gradient)
        size = 1.0
        while size > 1e-4:
            trial = weights - size * step
            trial_loss, trial_gradient, trial_curvature = _objective(usable, trial, penalty, centre)
            if trial_loss <= loss - 1e-4 * size * gradient @ step:
                break
            size /= 2
        else:
            break
        converged = loss - trial_loss < 1e-9
        weights, loss, gradient, curvature = trial, trial_loss, trial_gradient, trial_curvature
        if converged:
            break
    return RankingWeights(tuple(float(w) for w in weights))


def scaled_single(queries: Sequence[tuple[np.ndarray, np.ndarray]], name: str) -> RankingWeights:
    """The single ranking by feature `name`, scaled to the dev likelihood's best (a prior for `fit_ranking`)."""
    usable = _usable(queries)
    unit = np.asarray(single_feature(name).weights)
    scales = np.geomspace(0.3, 300, 25)
    losses = [_objective(usable, scale * unit, 0.0, unit * 0)[0] for scale in scales]
    return RankingWeights(tuple(float(w) for w in scales[int(np.argmin(losses))] * unit))


def _usable(queries: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    usable = [(x, y.astype(bool)) for x, y in queries if len(x) and y.any()]
    if len(usable) < 5:
        raise KnowledgeError("fitting ranking weights needs at least 5 dev questions whose gold document is found")
    return usable


def _objective(queries: Sequence[tuple[np.ndarray, np.ndarray]], weights: np.ndarray, penalty: float,
               centre: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean negative log-likelihood of the gold candidates, its gradient and a positive definite curvature."""
    offset = weights - centre
    loss = penalty / 2 * offset @ offset
    gradient = penalty * offset
    curvature = penalty * np.eye(len(weights))
    scale = 1.0 / len(queries)
    for x, gold in queries:
        logits = x @ weights
        p = _softmax(logits)
        q = _softmax(np.where(gold, logits, -np.inf))  # the distribution restricted to gold candidates
        loss -= scale * math.log(max(float(p[gold].sum()), 1e-300))
        mean_p = p @ x
        gradient += scale * (mean_p - q @ x)
        curvature += scale * ((x * p[:, None]).T @ x - np.outer(mean_p, mean_p))
    return float(loss), gradient, curvature


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def single_feature(name: str) -> RankingWeights:
    """Weights that rank by one feature alone (the single rankings that fitted weights must beat)."""
    return RankingWeights(tuple(1.0 if feature == name else 0.0 for feature in FEATURES))


DEFAULT_WEIGHTS = RankingWeights.from_dict({
    "dense": 2.044, "dense_text": 3.152, "keyword": 1.649, "keyword_text": 1.446,
    "dense_rr": 1.588, "dense_text_rr": 0.454, "keyword_rr": 0.901, "keyword_text_rr": 0.485,
    "focus": 3.62, "focus_dense_rr": 0.949, "focus_keyword_rr": -0.356,
    "question_shaped": -0.615, "shape_dense_rr": 0.23, "focus_shape_dense_rr": 3.18, "focus_shape_keyword_rr": -0.238,
    "length": 0.515,
})
"""Weights of an index that has none fitted for it: fitted on dev data only (the even-numbered DSTC11
validation contexts and the demo devset.jsonl, each set weighted equally, MiniLM embedder, L2 = 10
chosen by mean dev MRR; `benchmarks/retrieval.py --fit-default` refits them)."""
