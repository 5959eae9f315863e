"""Read labelled test sets (`{"id", "question", "history"?, "gold_doc_ids", "answer"?, "answerable"?}`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError
from knowledge import KnowledgeError
from knowledge.loaders import iter_jsonl

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestItem:
    """One labelled question."""

    __test__ = False  # not a pytest class

    id: str
    question: str
    gold_doc_ids: tuple[str, ...] = ()
    history: tuple[dict[str, str], ...] = ()
    answer: str | None = None
    answerable: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str | None:
        return self.metadata.get("group")


def _check_types(row: dict[str, Any], where: str) -> None:
    """Fields of the wrong type are errors: a string of gold ids would otherwise score 0 silently."""
    gold = row.get("gold_doc_ids")
    if gold is not None and not (isinstance(gold, list) and all(isinstance(g, str) for g in gold)):
        example = json.dumps([gold] if isinstance(gold, str) else ["billing/refunds"])
        raise AssistantError(f"{where}: gold_doc_ids must be a list of document ids, e.g. {example}, "
                             f"not {json.dumps(gold)}")
    history = row.get("history")
    if history is not None and not (isinstance(history, list) and all(
            isinstance(turn, dict) and isinstance(turn.get("role"), str) and isinstance(turn.get("content"), str)
            for turn in history)):
        raise AssistantError(f'{where}: history must be a list of {{"role": "user", "content": "..."}} objects')
    answerable = row.get("answerable")
    if answerable is not None and not isinstance(answerable, bool):
        raise AssistantError(f"{where}: answerable must be true or false (JSON booleans, not quoted), "
                             f"not {json.dumps(answerable)}")


def load_testset(path: Path, known_doc_ids: Iterable[str] | None = None) -> list[TestItem]:
    """Items of a test set; gold ids missing from the index are warned about by id."""
    path = Path(path)
    if not path.is_file():
        raise AssistantError(f"test set {path} does not exist: give a JSONL file with --testset")
    items, seen = [], set()
    try:
        for line_no, row in iter_jsonl(path):
            if not row.get("id") or not str(row.get("question", "")).strip():
                raise AssistantError(f"{path}, line {line_no}: every item needs an id and a question")
            if row["id"] in seen:
                raise AssistantError(f"{path}, line {line_no}: duplicate id {row['id']!r}")
            seen.add(row["id"])
            _check_types(row, f"{path}, line {line_no}")
            items.append(TestItem(
                id=str(row["id"]), question=str(row["question"]),
                gold_doc_ids=tuple(row.get("gold_doc_ids") or ()),
                history=tuple(row.get("history") or ()), answer=row.get("answer"),
                answerable=bool(row.get("answerable", True)), metadata=dict(row.get("metadata") or {}),
            ))
    except KnowledgeError as err:
        raise AssistantError(str(err)) from err
    if not items:
        raise AssistantError(f"test set {path} has no items")
    if known_doc_ids is not None:
        known = set(known_doc_ids)
        unknown = sorted({(i.id, g) for i in items for g in i.gold_doc_ids if g not in known})
        golds = {g for i in items for g in i.gold_doc_ids}
        if golds and golds.isdisjoint(known):
            raise AssistantError(f"none of the gold doc ids of test set {path} is in the index (e.g. "
                                 f"{sorted(golds)[0]!r}): evaluate with the index it was written for (--index NAME)")
        if unknown:
            shown = ", ".join(f"{item}: {gold}" for item, gold in unknown[:10])
            log.warning("%d gold doc ids are not in the index and can never be found (%s%s)", len(unknown), shown,
                        "…" if len(unknown) > 10 else "")
    return items
