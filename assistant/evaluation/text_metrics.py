"""Answer-overlap metrics against reference answers: token F1 (SQuAD-style) and ROUGE-L F1."""

from __future__ import annotations

import re
from collections import Counter

_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return _TOKEN.findall(text.lower())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 of a prediction against a reference answer."""
    predicted, wanted = tokens(prediction), tokens(reference)
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """F1 of the longest common subsequence of tokens."""
    predicted, wanted = tokens(prediction), tokens(reference)
    if not predicted or not wanted:
        return 0.0
    previous = [0] * (len(wanted) + 1)
    for p in predicted:
        current = [0]
        for j, w in enumerate(wanted, start=1):
            current.append(previous[j - 1] + 1 if p == w else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(predicted), lcs / len(wanted)
    return 2 * precision * recall / (precision + recall)
