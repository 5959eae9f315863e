"""Fitting intent / out-of-scope classifiers: split, threshold, both ways of fitting, the saved folder, bad input."""

import csv
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from assistant.classify import IntentClassifier
from knowledge.artifacts import read_card
from tests.conftest import SHARED_DATA
from tests.helpers import INTENT_EXAMPLES, unavailable, write_intents
from tests.test_cli import assistant
from training.classifier import ClassifierConfig, choose_threshold, stratified_split, train_classifier
from training.records import TrainingDataError

TEXTS = ["I want a refund for my order", "where is my parcel", "I forgot my password again"]


def test_stratified_split_keeps_a_tenth_of_every_label_and_is_deterministic():
    labels = ["a"] * 30 + ["b"] * 10 + ["c"] * 2 + ["d"]
    train, dev = stratified_split(labels, 0.1, seed=0)
    assert Counter(labels[i] for i in dev) == {"a": 3, "b": 1, "c": 1}  # a single example stays in train
    assert sorted(train + dev) == list(range(len(labels)))
    assert stratified_split(labels, 0.1, seed=0) == (train, dev)
    assert stratified_split(labels, 0.1, seed=1) != (train, dev)


def test_threshold_is_the_highest_within_the_in_scope_budget():
    labels = ["a", "b", "oos"]
    probabilities = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2],
                              [0.45, 0.35, 0.2], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    gold = ["a", "b", "a", "oos", "oos", "oos"]
    # no budget: the in-scope text at 0.5 stays, the oos text at 0.45 goes (the one at 0.8 is caught as a class)
    threshold, rule = choose_threshold(probabilities, gold, labels, max_in_scope_loss=0.0)
    assert 0.45 < threshold <= 0.5 and "at most 0.000 in-scope" in rule
    # a third of in-scope accuracy may go: the in-scope text at 0.5 goes too, and the oos text at 0.6 is caught
    threshold, _ = choose_threshold(probabilities, gold, labels, max_in_scope_loss=0.34)
    assert 0.6 < threshold <= 0.8
    # without oos texts the same rule holds: the lowest right answer (0.5) stays
    assert 0.0 < choose_threshold(probabilities[:3], gold[:3], labels, 0.01)[0] <= 0.5


def check_card(card: dict, data: Path, rows: int, fine_tuned: bool) -> None:
    assert card["kind"] == "classifier" and card["name"] == "clf"
    assert set(card) >= {"name", "kind", "created_at", "package_version", "base", "data", "config", "metrics"}
    assert len(card["base"]["sha256"]) == 64 and Path(card["base"]["path"], "model.safetensors").is_file()
    [source] = card["data"]
    assert source["rows"] == rows and len(source["sha256"]) == 64 and source["path"] == str(data.resolve())
    config = card["config"]
    assert config["labels"] == sorted(INTENT_EXAMPLES) and config["frozen"] is not fine_tuned
    assert 0.0 <= config["threshold"] < 1.0 and config["threshold_rule"]
    assert config["encoder"] == ("encoder" if fine_tuned else "base")
    dev = card["metrics"]["dev"]
    assert list(dev) == ["n", "accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "oos_precision"]
    assert dev["n"] == 4 and card["metrics"]["train_texts"] == rows - 4


def test_frozen_classifier_saves_a_complete_card_and_predicts_after_reload(tmp_path: Path):
    data = write_intents(tmp_path / "intents.csv")
    target = tmp_path / "clf"
    train_classifier(data, target, ClassifierConfig(frozen=True), label_column="category")
    assert sorted(p.name for p in target.iterdir()) == ["card.json", "head.safetensors"]
    check_card(read_card(target), data, 40, fine_tuned=False)
    assert [label for label, _ in IntentClassifier.load(target).predict(TEXTS)] == ["refund", "shipping", "password"]


def test_fine_tuned_classifier_saves_its_encoder_and_predicts_after_reload(tmp_path: Path):
    data = write_intents(tmp_path / "intents.jsonl")
    target = tmp_path / "clf"
    card = train_classifier(data, target, ClassifierConfig(epochs=2, batch_size=8))
    assert sorted(p.name for p in target.iterdir()) == ["card.json", "encoder", "head.safetensors"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (target / "encoder").iterdir()}
    check_card(card, data, 40, fine_tuned=True)
    assert card == read_card(target)
    assert 0 <= card["metrics"]["best_epoch"] <= 2
    assert card["metrics"]["refit_texts"] == (40 if card["metrics"]["best_epoch"] else 0)
    assert [label for label, _ in IntentClassifier.load(target).predict(TEXTS)] == ["refund", "shipping", "password"]


def test_refit_trains_the_saved_model_on_the_dev_texts_too_and_keeps_the_dev_threshold(tmp_path: Path):
    data = write_intents(tmp_path / "intents.jsonl")
    # a probe regularised to nothing leaves the fine-tuning epoch something to beat on dev (else no refit)
    config = ClassifierConfig(epochs=1, batch_size=8, regularization=1e-6, head_learning_rate=0.05)
    refit = train_classifier(data, tmp_path / "refit", config)
    kept = train_classifier(data, tmp_path / "kept", replace(config, refit=False))
    assert refit["metrics"]["best_epoch"] == kept["metrics"]["best_epoch"] == 1
    assert (refit["metrics"]["refit_texts"], kept["metrics"]["refit_texts"]) == (40, 0)
    # the dev split chose the same threshold and figures; the saved weights differ (they saw 4 more texts)
    assert refit["config"]["threshold"] == kept["config"]["threshold"]
    assert refit["metrics"]["dev"] == kept["metrics"]["dev"]
    a, b = IntentClassifier.load(tmp_path / "refit"), IntentClassifier.load(tmp_path / "kept")
    assert a.threshold == refit["config"]["threshold"]
    assert not np.allclose(a.weight, b.weight)
    assert [label for label, _ in a.predict(TEXTS)] == ["refund", "shipping", "password"]


def test_one_label_is_an_error_that_says_what_to_add(tmp_path: Path):
    data = write_intents(tmp_path / "one.jsonl", {"refund": INTENT_EXAMPLES["refund"]})
    with pytest.raises(TrainingDataError, match="every row has the label 'refund'; a classifier needs at least two"):
        train_classifier(data, tmp_path / "clf", ClassifierConfig(frozen=True))
    assert not (tmp_path / "clf").exists()


def test_bad_lines_are_named_and_skip_bad_goes_on(tmp_path: Path, isolated_env: Path):
    data = write_intents(tmp_path / "intents.jsonl")
    lines = data.read_text().splitlines()
    lines[2], lines[7] = '{"text": "broken', '{"text": "no label here"}'
    data.write_text("\n".join(lines) + "\n")
    result = assistant("train", "classifier", "--data", str(data), "--out", "clf", "--frozen")
    assert result.returncode == 2
    assert "line 3: not valid JSON" in result.stderr and "line 8: no label field 'label'" in result.stderr
    assert "--skip-bad" in result.stderr and not (isolated_env / "classifiers" / "clf").exists()
    result = assistant("train", "classifier", "--data", str(data), "--out", "clf", "--frozen", "--skip-bad",
                       env={"ASSISTANT_DATA_DIR": str(isolated_env)})
    assert result.returncode == 0, result.stderr
    assert read_card(isolated_env / "classifiers" / "clf")["data"][0]["rows"] == 38


def test_a_missing_column_names_the_columns_there_are(tmp_path: Path):
    data = write_intents(tmp_path / "intents.csv")
    result = assistant("train", "classifier", "--data", str(data), "--out", str(tmp_path / "clf"))
    assert result.returncode == 2
    assert "header (text, category) has no column 'label'" in result.stderr and "--label-column" in result.stderr


@pytest.mark.slow
def test_frozen_classifier_on_a_banking77_sample(tmp_path: Path):
    folder = SHARED_DATA / "banking77"
    if not (folder / "train.csv").is_file():
        unavailable(f"Banking77 in {folder}")
    for name, per_label in (("train", 40), ("test", 10)):  # the first rows of every intent: a minute, not ten
        seen: Counter = Counter()
        kept = []
        for row in csv.DictReader((folder / f"{name}.csv").open(encoding="utf-8")):
            seen[row["category"]] += 1
            if seen[row["category"]] <= per_label:
                kept.append(row)
        with (tmp_path / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, ["text", "category"])
            writer.writeheader()
            writer.writerows(kept)
    train_classifier(tmp_path / "train.csv", tmp_path / "b77", ClassifierConfig(frozen=True),
                     label_column="category")
    result = assistant("eval", "intents", "--model", str(tmp_path / "b77"), "--testset", str(tmp_path / "test.csv"),
                       "--label-column", "category", "--json")
    payload = json.loads(result.stdout.splitlines()[-1])
    assert payload["n"] == 770 and payload["accuracy"] >= 0.8  # 0.93 with all 10,003 training texts
