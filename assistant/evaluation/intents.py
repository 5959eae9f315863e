"""Intent files (JSONL `{"text", "label"}` or CSV with a header) and the metrics of `eval intents`.

The label `oos` means out of scope. Definitions (ARCHITECTURE.md): `in_scope_accuracy` is accuracy on
items whose gold label is not `oos`, `oos_recall` the share of `oos` items predicted `oos`,
`oos_precision` the share of `oos` predictions that are right; a figure with no data is None.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError

log = logging.getLogger(__name__)
OOS = "oos"
MAX_REPORTED = 5


class IntentDataError(AssistantError):
    """An intent file that cannot be used as given (missing, bad lines, missing columns)."""


def read_intents(path: Path, *, text_column: str = "text", label_column: str = "label",
                 skip_bad: bool = False) -> list[tuple[str, str]]:
    """(text, label) pairs of a JSONL or CSV file; bad lines raise, naming them, unless `skip_bad`."""
    path = Path(path)
    if not path.is_file():
        raise IntentDataError(f"{path}: no such file (give a JSONL or CSV file of texts and labels)")
    pairs: list[tuple[str, str]] = []
    bad: list[str] = []
    for line_no, row in _rows(path, text_column, label_column):
        try:
            if isinstance(row, str):
                raise ValueError(row)
            pairs.append((_field(row, text_column, "text"), _field(row, label_column, "label")))
        except ValueError as err:
            bad.append(f"line {line_no}: {err}")
    if bad and not skip_bad:
        shown = "; ".join(bad[:MAX_REPORTED]) + (f"; and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED
                                                  else "")
        raise IntentDataError(f"{path}: {len(bad)} bad line(s): {shown}. Fix them, or pass --skip-bad to leave "
                              "them out")
    for message in bad:
        log.warning("skipped %s, %s", path, message)
    if not pairs:
        raise IntentDataError(f"{path}: no usable rows (each needs a text and a label)")
    return pairs


def _rows(path: Path, text_column: str, label_column: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) for each non-blank line; a row that cannot be read comes as the reason, a string."""
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise IntentDataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    if path.suffix.lower() != ".csv":
        for line_no, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield line_no, f"not valid JSON ({err.msg})"
                continue
            yield line_no, row if isinstance(row, dict) else "expected a JSON object"
        return
    reader = csv.DictReader(content.splitlines())
    header = reader.fieldnames or []
    missing = [column for column in (text_column, label_column) if column not in header]
    if missing:
        raise IntentDataError(
            f"{path}: the CSV header ({', '.join(header) or 'empty'}) has no column {' or '.join(map(repr, missing))}: "
            "name the text and label columns with --text-column and --label-column")
    for row in reader:
        if None in row:
            yield reader.line_num, f"more cells than the header has columns ({len(header)})"
        else:
            yield reader.line_num, row


def _field(row: dict[str, Any], column: str, role: str) -> str:
    value = row.get(column)
    if value is None:
        fields = ", ".join(map(str, row)) or "none"
        raise ValueError(f"no {role} field {column!r} (fields: {fields}); name it with --{role}-column")
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise ValueError(f"the {role} ({column!r}) is empty or not text")
    return str(value).strip()


def intent_metrics(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """`n, accuracy, macro_f1, in_scope_accuracy, oos_recall, oos_precision`, then `labels` (per-label
    precision, recall, F1 and support). Macro F1 averages over every label that is gold or predicted."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    right = [g == p for g, p in zip(gold, predicted, strict=True)]
    in_scope = [ok for g, ok in zip(gold, right, strict=True) if g != OOS]
    oos_gold = [p == OOS for g, p in zip(gold, predicted, strict=True) if g == OOS]
    oos_predicted = [g == OOS for g, p in zip(gold, predicted, strict=True) if p == OOS]
    per_label = _per_label(gold, predicted)
    return {
        "n": len(gold),
        "accuracy": _mean(right),
        "macro_f1": _mean([row["f1"] for row in per_label.values()]),
        "in_scope_accuracy": _mean(in_scope),
        "oos_recall": _mean(oos_gold),
        "oos_precision": _mean(oos_predicted),
        "labels": per_label,
    }


def _per_label(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, dict[str, Any]]:
    true_pos = Counter(g for g, p in zip(gold, predicted, strict=True) if g == p)
    gold_count, predicted_count = Counter(gold), Counter(predicted)
    rows = {}
    for label in sorted(set(gold_count) | set(predicted_count)):
        precision = true_pos[label] / predicted_count[label] if predicted_count[label] else 0.0
        recall = true_pos[label] / gold_count[label] if gold_count[label] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows[label] = {"n": gold_count[label], "precision": precision, "recall": recall, "f1": f1}
    return rows


def _mean(values: Sequence[bool] | Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
