"""Paired bootstrap confidence intervals: is B better than A on the same items, beyond chance?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Difference:
    """Mean of B - A over the paired items, with its bootstrap interval."""

    n: int
    mean_a: float
    mean_b: float
    delta: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The whole interval lies on one side of zero."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "a": round(self.mean_a, 4), "b": round(self.mean_b, 4), "delta": round(self.delta, 4),
                "ci95": [round(self.low, 4), round(self.high, 4)]}


def paired_bootstrap(a: Sequence[float | None], b: Sequence[float | None], *, samples: int = 10_000,
                     seed: int = 0, confidence: float = 0.95) -> Difference | None:
    """Percentile interval of mean(b - a), resampling items; pairs where either side is None are left out."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if not pairs:
        return None
    xs, ys = np.array(pairs, dtype=float).T
    diffs = ys - xs
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(samples, len(diffs)))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Difference(len(diffs), float(xs.mean()), float(ys.mean()), float(diffs.mean()), float(low), float(high))
