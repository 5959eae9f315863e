"""Intent and out-of-scope classifiers on Banking77 and CLINC150 (../shared/data): fine-tuned MiniLM against
the baseline, logistic regression on frozen MiniLM embeddings (`assistant train classifier --frozen`).

- Banking77: fit on `train.csv`, score on `test.csv` (77 intents, no out-of-scope texts).
- CLINC150: fit on `train` + `oos_train`, score on `val` + `oos_val` (150 intents and `oos`).
Both models hold out the same stratified 10% dev split, which sets each one's out-of-scope threshold
(the highest costing at most 1 point of in-scope dev accuracy); the figures are `assistant eval intents`
figures with that threshold, `argmax` the same without it. Training time is wall time on this machine,
with the threads used and the load average beside it (a shared machine trains slower).

`--json` prints one object on the last line; `*_ratio` keys are ours / baseline, and `*_diff_ci95` a paired
bootstrap 95% interval of ours - baseline.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the `training` package, not benchmarks/training.py beside this script
DATA = ROOT.parent / "shared" / "data"
HEADLINE = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "oos_precision")
log = logging.getLogger("benchmarks.classifiers")


def clinc_files(data: Path, folder: Path) -> tuple[Path, Path]:
    """CLINC150's train + oos_train and val + oos_val as JSONL intent files in `folder`."""
    splits = json.loads((data / "clinc150" / "clinc150_dev.json").read_text(encoding="utf-8"))
    paths = []
    for name, parts in (("train", ("train", "oos_train")), ("val", ("val", "oos_val"))):
        path = folder / f"clinc150_{name}.jsonl"
        path.write_text("".join(json.dumps({"text": text, "label": label}) + "\n"
                                for part in parts for text, label in splits[part]), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def measure(train: Path, test: Path, target: Path, config, label_column: str) -> dict:
    """Fit one classifier, then score it on the test file: figures, argmax figures, seconds."""
    from assistant.classify import IntentClassifier, decide
    from assistant.evaluation.intents import intent_metrics, read_intents
    from training.classifier import train_classifier

    load = os.getloadavg()[0]
    card = train_classifier(train, target, config, label_column=label_column)
    classifier = IntentClassifier.load(target)
    items = read_intents(test, label_column=label_column)
    gold = [label for _, label in items]
    started = time.perf_counter()
    probabilities = classifier.probabilities([text for text, _ in items])
    predict_s = time.perf_counter() - started
    predicted = [label for label, _ in decide(probabilities, classifier.labels, classifier.threshold)]
    figures = {key: value for key, value in intent_metrics(gold, predicted).items() if key != "labels"}
    best = [label for label, _ in decide(probabilities, classifier.labels, 0.0)]
    argmax = intent_metrics(gold, best)
    return {**figures, "argmax": {key: argmax[key] for key in HEADLINE}, "threshold": classifier.threshold,
            "train_s": card["metrics"]["train_s"], "best_epoch": card["metrics"]["best_epoch"],
            "predict_texts_per_s": len(items) / predict_s, "load_average_at_start": load,
            "_gold": gold, "_predicted": predicted, "_argmax": best}


def bootstrap_diff(gold: list[str], ours: list[str], base: list[str], keep, hit, rounds: int = 2000) -> list[float]:
    """95% interval of ours - baseline for the share of `keep` items where `hit(gold, predicted)`, resampling items."""
    rows = [i for i, g in enumerate(gold) if keep(g)]
    a = np.array([hit(gold[i], ours[i]) for i in rows], float)
    b = np.array([hit(gold[i], base[i]) for i in rows], float)
    picks = np.random.default_rng(0).integers(0, len(rows), (rounds, len(rows)))
    diffs = a[picks].mean(axis=1) - b[picks].mean(axis=1)
    return [float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))]


def compare(ours: dict, base: dict) -> dict:
    """Ratios of the headline figures and bootstrap intervals of the differences that matter."""
    out = {f"{key}_ratio": ours[key] / base[key] for key in HEADLINE if ours[key] is not None and base[key]}
    out["argmax_accuracy_ratio"] = ours["argmax"]["accuracy"] / base["argmax"]["accuracy"]
    gold = ours["_gold"]
    out["accuracy_diff_ci95"] = bootstrap_diff(gold, ours["_predicted"], base["_predicted"], lambda g: True,
                                               lambda g, p: g == p)
    out["argmax_accuracy_diff_ci95"] = bootstrap_diff(gold, ours["_argmax"], base["_argmax"], lambda g: True,
                                                      lambda g, p: g == p)
    if "oos" in gold:
        out["in_scope_accuracy_diff_ci95"] = bootstrap_diff(gold, ours["_predicted"], base["_predicted"],
                                                            lambda g: g != "oos", lambda g, p: g == p)
        out["oos_recall_diff_ci95"] = bootstrap_diff(gold, ours["_predicted"], base["_predicted"],
                                                     lambda g: g == "oos", lambda g, p: p == "oos")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["banking77", "clinc150"], help="run one data set")
    parser.add_argument("--epochs", type=int, default=None, help="most fine-tuning epochs (default: the config's)")
    parser.add_argument("--no-refit", action="store_true", help="save the dev-split model (no refit on all texts)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (1 is faster when others share)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding banking77/ and clinc150/")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    wanted = [args.only] if args.only else ["banking77", "clinc150"]
    missing = [name for name in wanted if not (args.data / name).is_dir()]
    if missing:
        sys.exit(f"{', '.join(str(args.data / name) for name in missing)} not found: this benchmark reads the "
                 "public data sets from ../shared/data beside the project (or --data DIR); nothing was measured")

    import dataclasses

    import torch

    from training.classifier import ClassifierConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    ours_config = ClassifierConfig(refit=not args.no_refit)
    if args.epochs is not None:
        ours_config = dataclasses.replace(ours_config, epochs=args.epochs)
    configs = {"ours": ours_config, "baseline": dataclasses.replace(ours_config, frozen=True)}
    result: dict = {"baseline": "frozen MiniLM + logistic regression", "threads": torch.get_num_threads(),
                    "cpus": os.cpu_count(), "ours_config": dataclasses.asdict(ours_config)}
    with tempfile.TemporaryDirectory(prefix="classifiers-") as tmp:
        folder = Path(tmp)
        for name in wanted:
            if name == "banking77":
                train, test, label_column = args.data / name / "train.csv", args.data / name / "test.csv", "category"
            else:
                (train, test), label_column = clinc_files(args.data, folder), "label"
            figures = {kind: measure(train, test, folder / f"{name}-{kind}", config, label_column)
                       for kind, config in configs.items()}
            figures.update(compare(figures["ours"], figures["baseline"]))
            for kind in configs:
                del figures[kind]["_gold"], figures[kind]["_predicted"], figures[kind]["_argmax"]
            result[name] = figures
            log.info("%s: %s", name, json.dumps(figures))
    if args.json:
        print(json.dumps(result))
        return
    for name in wanted:
        print(f"{name}  (ours: fine-tuned; baseline: {result['baseline']})")
        for key in (*HEADLINE, "threshold", "train_s"):
            row = [result[name][kind][key] for kind in configs]
            print(f"  {key:>18}: " + "  ".join("     -" if v is None else f"{v:6.3f}" if isinstance(v, float)
                                               else f"{v:6}" for v in row))


if __name__ == "__main__":
    main()
