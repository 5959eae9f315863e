"""Small aggregates every report shares: a mean that skips missing values, percentiles, rates."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values present (None when there are none)."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def median(values: Sequence[float]) -> float | None:
    """The median, None for no values."""
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (`share` in [0, 1]) of the values, None for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else None


def rate(count: int, total: int) -> float | None:
    """count / total, None when there is nothing to count."""
    return count / total if total else None
