"""Does fine-tuning help? The adapter against the base model on the demo test set and on held-out DSTC11.

Demo test set: both run through the whole dialogue manager (`eval answers`), and the per-item
fact_recall and token_f1 are compared with a paired bootstrap (95% interval of adapter - base).
DSTC11 (`../shared/data/dstc11`): contexts of dialogues held out from training (`training.grounded_dialogues`
split), each given to the model in the server's prompt with its gold knowledge as evidence; the
draft's token F1 against the annotated response, base and adapter, with the same bootstrap.

`--json` prints one object on the last line; `*_ratio` keys are adapter / base.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the `training` package, not benchmarks/training.py beside this script
log = logging.getLogger("benchmarks.adapter")
FIGURES = ("answer_rate", "abstention", "groundedness", "fallback_rate", "fact_recall", "wrong_fact_rate",
           "token_f1", "latency_p50_s")


def demo(adapter: str, limit: int | None) -> dict[str, Any]:
    from assistant.bootstrap import build_dialogue_manager
    from assistant.config import load_settings
    from assistant.evaluation.answers import evaluate_answers
    from assistant.evaluation.bootstrap import paired_bootstrap
    from assistant.evaluation.testsets import load_testset
    from assistant.evaluation.text_metrics import token_f1
    from knowledge.demo_data import TESTSET

    results: dict[str, Any] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for name in ("base", adapter):
        started = time.perf_counter()
        manager = build_dialogue_manager(load_settings(), adapter=name)
        items = load_testset(TESTSET, manager.retriever.index.document_hashes)[:limit]
        summary, records[name] = evaluate_answers(manager, items)
        summary["runtime_s"] = round(time.perf_counter() - started, 1)
        results[name] = summary
        del manager
    base, tuned = records["base"], records[adapter]

    def per_item(rows: list[dict[str, Any]], key: str) -> list[float | None]:
        if key == "token_f1":
            return [token_f1(r["answer"], r["reference"]) if r["reference"] else None for r in rows]
        if key == "groundedness_before":
            return [r["groundedness_before"] for r in rows]
        return [r[key] for r in rows]

    results["differences"] = {
        key: (d.to_dict() if (d := paired_bootstrap(per_item(base, key), per_item(tuned, key))) else None)
        for key in ("fact_recall", "token_f1", "groundedness_before")}
    return results


def dstc11(adapter: str, limit: int, folder: Path) -> dict[str, Any]:
    from assistant.bootstrap import open_generator
    from assistant.config import load_settings
    from assistant.evaluation.answers import repeated_sentences
    from assistant.evaluation.bootstrap import paired_bootstrap
    from assistant.evaluation.text_metrics import token_f1
    from training import grounded_dialogues as data

    _train, held = data.split_turns(data.load_turns(folder))
    random.Random(0).shuffle(held)
    held = held[:limit]
    settings = load_settings()
    scores: dict[str, list[float]] = {}
    out: dict[str, Any] = {"n": len(held)}
    for name in ("base", adapter):
        generator = open_generator(settings, name)
        started = time.perf_counter()
        drafts = ["".join(generator.stream(data.turn_messages(t, settings.history_messages))) for t in held]
        scores[name] = [token_f1(d, t.response) for d, t in zip(drafts, held, strict=True)]
        out[name] = {"token_f1": round(sum(scores[name]) / len(held), 4),
                     "mean_words": round(sum(len(d.split()) for d in drafts) / len(held), 1),
                     "drafts_with_repeats": sum(bool(repeated_sentences(d)) for d in drafts),
                     "runtime_s": round(time.perf_counter() - started, 1)}
        del generator
    diff = paired_bootstrap(scores["base"], scores[adapter])
    out["differences"] = {"token_f1": diff.to_dict() if diff else None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default="production", help="Adapter name or path (default: production).")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N demo test items.")
    parser.add_argument("--dstc11-limit", type=int, default=100, help="Held-out DSTC11 contexts (0: skip).")
    parser.add_argument("--dstc11", type=Path, default=ROOT.parent / "shared" / "data" / "dstc11")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--json", action="store_true", help="Print one JSON object on the last line.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    result: dict[str, Any] = {"baseline": "base", "adapter": args.adapter}
    if not args.skip_demo:
        result["demo"] = demo(args.adapter, args.limit)
        log.info("demo figures: %s", json.dumps(result["demo"]))
        base, tuned = result["demo"]["base"], result["demo"][args.adapter]
        for key in ("fact_recall", "token_f1"):
            if base.get(key) and tuned.get(key) is not None:
                result[f"demo.{key}_ratio"] = round(tuned[key] / base[key], 3)
    if args.dstc11_limit:
        if args.dstc11.is_dir():
            result["dstc11"] = dstc11(args.adapter, args.dstc11_limit, args.dstc11)
            d = result["dstc11"]
            if d["base"]["token_f1"]:
                result["dstc11.token_f1_ratio"] = round(d[args.adapter]["token_f1"] / d["base"]["token_f1"], 3)
        else:
            log.warning("no DSTC11 data at %s: skipped", args.dstc11)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    if "demo" in result:
        print(f"demo test set ({result['demo']['base']['n']} items)      base    {args.adapter}")
        for key in FIGURES:
            a, b = result["demo"]["base"].get(key), result["demo"][args.adapter].get(key)
            print(f"  {key:<22} {a if a is None else f'{a:7.3f}'}  {b if b is None else f'{b:7.3f}'}")
        for key in ("groundedness", "drafts_with_repeats"):
            a = result["demo"]["base"]["before_check"][key]
            b = result["demo"][args.adapter]["before_check"][key]
            print(f"  {key + ' (before check)':<22} {a}  {b}")
        for key, diff in result["demo"]["differences"].items():
            print(f"  {key} delta {diff['delta']:+.3f}, 95% CI [{diff['ci95'][0]:+.3f}, {diff['ci95'][1]:+.3f}]"
                  if diff else f"  {key}: no pairs")
    if "dstc11" in result:
        d = result["dstc11"]
        print(f"DSTC11 held out ({d['n']} contexts): token F1 base {d['base']['token_f1']:.3f}, "
              f"{args.adapter} {d[args.adapter]['token_f1']:.3f}; delta {d['differences']['token_f1']}")


if __name__ == "__main__":
    main()
