"""Run a test set through named models (adapters, `base`, `production`) and keep the results in `reports/`.

`eval compare`, `eval gate`, promotion and the console's Models view all go through here, so each
writes its result where `assistant report` and the console find it: `reports/latest-compare.json`,
`reports/latest-gate.json`, and per model `reports/evaluations/<model>.json` (its latest figures).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.evaluation.compare import Record, compare_runs
from assistant.evaluation.gate import GateConfig, gate
from assistant.evaluation.testsets import TestItem, load_testset
from assistant.files import write_atomic
from assistant.store import Store

log = logging.getLogger(__name__)


@dataclass
class ModelRun:
    """One model's answers to a test set."""

    name: str
    """As asked for (`production`, `base`, an adapter name or path)."""
    adapter: str
    """What it resolved to: the adapter folder's name, or `base`."""
    summary: dict[str, Any]
    records: list[Record]


def resolved_adapter(settings: Settings, name: str) -> str:
    """The adapter a model name stands for (`base` for none); a missing adapter is a clear error."""
    from assistant.models import resolve_adapter_dir

    folder = resolve_adapter_dir(settings, name)
    return folder.name if folder is not None else "base"


def reports_dir(settings: Settings) -> Path:
    return settings.data_dir / "reports"


def run_model(settings: Settings, name: str, items: Sequence[TestItem], *, retriever: Any = None,
              store: Store | None = None, generator: Any = None, progress: bool = True) -> ModelRun:
    """Every item through a dialogue manager serving model `name`; the figures are saved as its latest."""
    from assistant.bootstrap import build_dialogue_manager
    from assistant.evaluation.answers import evaluate_answers

    adapter = resolved_adapter(settings, name)
    manager = build_dialogue_manager(settings, retriever=retriever, store=store, generator=generator, adapter=name)
    log.info("evaluating %s (adapter %s) on %d items", name, adapter, len(items))
    summary, records = evaluate_answers(manager, items, progress=progress)
    run = ModelRun(name, adapter, summary, records)
    save_result(settings, f"evaluations/{adapter}", {"model": name, "adapter": adapter, "n": len(items),
                                                     "summary": summary})
    return run


def load_items(testset: Path | None, retriever: Any, limit: int | None = None) -> list[TestItem]:
    """The test set's items (the demo test set by default), the first `limit` when given."""
    from knowledge.demo_data import TESTSET

    items = load_testset(testset or TESTSET, retriever.index.document_hashes)[:limit]
    if not items:
        raise ValueError(f"test set {testset or TESTSET} holds no items")
    return items


def compare_models(settings: Settings, a: ModelRun, b: ModelRun, *, seed: int = 0,
                   testset: Path | None = None) -> dict[str, Any]:
    """The compare result of two runs, saved as the latest compare."""
    result = compare_runs(a.name, a.records, b.name, b.records, seed=seed)
    result["summaries"] = {"a": a.summary, "b": b.summary}
    result["testset"] = str(testset) if testset else "demo test set"
    save_result(settings, "latest-compare", result)
    return result


def gate_models(settings: Settings, baseline: ModelRun, candidate: ModelRun, config: GateConfig, *,
                testset: Path | None = None) -> dict[str, Any]:
    """The gate's verdict on a candidate against a baseline, saved as the latest gate result."""
    verdict = gate(baseline.summary, candidate.summary, config)
    result = {"candidate": candidate.name, "candidate_adapter": candidate.adapter, "baseline": baseline.name,
              "baseline_adapter": baseline.adapter, **verdict,
              "testset": str(testset) if testset else "demo test set", "n": len(candidate.records)}
    save_result(settings, "latest-gate", result)
    return result


def run_compare(settings: Settings, a: str, b: str, *, testset: Path | None = None, limit: int | None = None,
                seed: int = 0, progress: bool = True) -> tuple[dict[str, Any], list[ModelRun]]:
    """`eval compare`: both models on the same items, sharing one retriever and store; the result and both runs."""
    from assistant.bootstrap import open_retriever

    for name in (a, b):
        resolved_adapter(settings, name)  # a missing adapter fails before any work
    retriever, store = open_retriever(settings), Store.open(settings.store_url)
    items = load_items(testset, retriever, limit)
    runs = [run_model(settings, name, items, retriever=retriever, store=store, progress=progress) for name in (a, b)]
    return compare_models(settings, *runs, seed=seed, testset=testset), runs


def run_gate(settings: Settings, candidate: str, baseline: str = "production", *, config: GateConfig | None = None,
             testset: Path | None = None, limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    """`eval gate`: the candidate and the baseline on the same items, then the gate's verdict."""
    from assistant.bootstrap import open_retriever

    config = config or GateConfig()
    for name in (baseline, candidate):
        resolved_adapter(settings, name)
    retriever, store = open_retriever(settings), Store.open(settings.store_url)
    items = load_items(testset, retriever, limit)
    base_run, candidate_run = (run_model(settings, name, items, retriever=retriever, store=store, progress=progress)
                               for name in (baseline, candidate))
    return gate_models(settings, base_run, candidate_run, config, testset=testset)


def save_result(settings: Settings, name: str, result: dict[str, Any]) -> Path:
    """`reports/<name>.json`, stamped with the time; a report folder that cannot be written is logged, not fatal."""
    path = reports_dir(settings) / f"{name}.json"
    stamped = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    try:
        return write_atomic(path, json.dumps(stamped, ensure_ascii=False, default=str, indent=1))
    except OSError as err:
        log.warning("could not save %s (%s): the result is printed but not kept", path, err.strerror or err)
        return path


def latest_result(settings: Settings, name: str) -> dict[str, Any] | None:
    """A saved result (`latest-compare`, `latest-gate`, `evaluations/<adapter>`), None when there is none."""
    path = reports_dir(settings) / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
