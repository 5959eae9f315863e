"""Where a turn's time goes outside generation: guard and state, retrieval, evidence, check, log.

Runs the demo dev questions through the real dialogue manager (MiniLM, the default index, a fresh
SQLite store) with a scripted generator that replies with the evidence it was given, so the check
runs on realistic text and generation itself costs ~0. Prints p50/p95 per stage and of the whole
turn outside generation, beside the baseline of retrieval alone (`Retriever.search`) in the same run.

`--json` prints one object on the last line.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("prepare_s", "retrieval_s", "evidence_s", "check_s", "log_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="Passes over the dev questions.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from assistant.bootstrap import build_dialogue_manager, open_retriever
    from assistant.config import load_settings
    from assistant.dialogue.events import TurnView
    from assistant.evaluation.aggregate import percentile
    from assistant.evaluation.testsets import load_testset
    from assistant.generation import ScriptedGenerator, echo_evidence
    from assistant.store import Store
    from knowledge.demo_data import DEVSET

    settings = load_settings(max_messages_per_minute=10_000)
    retriever = open_retriever(settings)
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(f"sqlite:///{folder}/bench.db")
        manager = build_dialogue_manager(settings, retriever=retriever, store=store,
                                         generator=ScriptedGenerator(echo_evidence))
        items = load_testset(DEVSET, retriever.index.document_hashes)
        for item in items[:3]:  # warm-up: caches, first-call costs
            TurnView.collect(manager.respond(None, item.question, channel="eval"))
        stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
        outside, baseline = [], []
        for _ in range(args.rounds):
            for item in items:  # each question embedded afresh: the query cache would make repeats free
                retriever.query_vectors.clear()
                began = time.perf_counter()
                retriever.search(item.question, k=settings.retrieval_k)
                baseline.append(time.perf_counter() - began)
                retriever.query_vectors.clear()
                final = TurnView.collect(manager.respond(None, item.question, channel="eval")).final
                timings = final.timings
                for stage in STAGES:
                    stages[stage].append(timings.get(stage) or 0.0)
                outside.append(timings["total_s"] - (timings.get("generation_s") or 0.0))
    result = {
        "baseline": "retrieval alone (Retriever.search)", "turns": len(outside),
        "outside_generation_ms": {"p50": 1000 * statistics.median(outside), "p95": 1000 * percentile(outside, 0.95)},
        "baseline_retrieval_ms": {"p50": 1000 * statistics.median(baseline), "p95": 1000 * percentile(baseline, 0.95)},
        "stages_ms": {stage: {"p50": 1000 * statistics.median(v), "p95": 1000 * percentile(v, 0.95)}
                      for stage, v in stages.items()},
    }
    result["outside_generation_p95_ratio"] = round(result["baseline_retrieval_ms"]["p95"]
                                                   / result["outside_generation_ms"]["p95"], 3)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    print(f"{result['turns']} turns; outside generation p50 {result['outside_generation_ms']['p50']:.1f} ms, "
          f"p95 {result['outside_generation_ms']['p95']:.1f} ms (retrieval alone p95 "
          f"{result['baseline_retrieval_ms']['p95']:.1f} ms)")
    for stage, figures in result["stages_ms"].items():
        print(f"  {stage:>12}: p50 {figures['p50']:6.1f} ms  p95 {figures['p95']:6.1f} ms")


if __name__ == "__main__":
    main()
