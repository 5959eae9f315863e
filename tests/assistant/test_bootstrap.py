"""The paired bootstrap: exact means, reproducible intervals, the sign of a clear difference."""

import pytest

from assistant.evaluation.bootstrap import paired_bootstrap


def test_means_and_delta_are_exact_and_none_pairs_are_left_out():
    diff = paired_bootstrap([0.0, 0.5, 1.0, None], [1.0, 0.5, 1.0, 0.2], samples=200)
    assert (diff.n, diff.mean_a, diff.mean_b, diff.delta) == (3, 0.5, pytest.approx(2.5 / 3), pytest.approx(1 / 3))


def test_intervals_are_reproducible_with_a_seed_and_see_a_clear_gain():
    a = [0.1 * (i % 5) for i in range(60)]
    b = [x + 0.2 for x in a]
    first, again = paired_bootstrap(a, b, seed=3), paired_bootstrap(a, b, seed=3)
    assert first == again and first.significant and first.low == pytest.approx(0.2)
    noisy = paired_bootstrap(a, list(reversed(a)), seed=3)
    assert noisy.low < 0 < noisy.high and not noisy.significant


def test_no_pairs_gives_none():
    assert paired_bootstrap([None], [1.0]) is None
