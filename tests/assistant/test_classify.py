"""Classifier inference, intent files and the `eval intents` metrics; the dialogue manager's classifier slot."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.classify import ClassifierError, IntentClassifier, decide, open_classifier
from assistant.dialogue import Escalated
from assistant.dialogue.events import TurnView
from assistant.evaluation.intents import IntentDataError, intent_metrics, read_intents
from tests.test_cli import assistant


def test_intent_metrics_on_a_hand_computed_example():
    gold = ["a", "a", "a", "b", "b", "oos", "oos", "oos"]
    predicted = ["a", "a", "b", "b", "oos", "oos", "oos", "a"]
    metrics = intent_metrics(gold, predicted)
    assert list(metrics)[:6] == ["n", "accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "oos_precision"]
    assert metrics["n"] == 8
    assert metrics["accuracy"] == 5 / 8
    assert metrics["in_scope_accuracy"] == 3 / 5  # a a a b b: right, right, wrong, right, wrong
    assert metrics["oos_recall"] == 2 / 3
    assert metrics["oos_precision"] == 2 / 3  # predicted oos at 4, 5, 6; gold oos at 5 and 6
    # F1: a = 2/3 (P 2/3, R 2/3), b = 1/2 (P 1/2, R 1/2), oos = 2/3
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert metrics["labels"]["b"] == {"n": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_intent_metrics_without_out_of_scope_are_null():
    metrics = intent_metrics(["a", "b"], ["a", "a"])
    assert metrics["oos_recall"] is None and metrics["oos_precision"] is None
    assert metrics["in_scope_accuracy"] == metrics["accuracy"] == 0.5
    assert intent_metrics(["oos"], ["oos"])["in_scope_accuracy"] is None


def test_below_the_threshold_is_out_of_scope_with_the_rest_of_the_probability():
    probabilities = np.array([[0.9, 0.1], [0.45, 0.55]])
    assert decide(probabilities, ["refund", "shipping"], 0.6) == [("refund", pytest.approx(0.9)),
                                                                   ("oos", pytest.approx(0.45))]
    assert decide(probabilities, ["refund", "shipping"], 0.0)[1] == ("shipping", pytest.approx(0.55))


def test_read_intents_csv_with_other_columns(tmp_path: Path):
    path = tmp_path / "b77.csv"
    path.write_text('text,category\nHow do I locate my card?,card_arrival\n"Refund, please",refund\n')
    assert read_intents(path, label_column="category") == [("How do I locate my card?", "card_arrival"),
                                                            ("Refund, please", "refund")]
    with pytest.raises(IntentDataError, match=r"header \(text, category\) has no column 'label'.*--label-column"):
        read_intents(path)


def test_read_intents_names_bad_lines_and_skips_them_when_asked(tmp_path: Path):
    path = tmp_path / "intents.jsonl"
    path.write_text('{"text": "refund me", "label": "refund"}\n{"text": "oops"\n\n{"text": "", "label": "x"}\n'
                    '{"utterance": "hi", "label": "greet"}\n{"text": "where is it", "label": "shipping"}\n')
    with pytest.raises(IntentDataError) as caught:
        read_intents(path)
    message = str(caught.value)
    assert "3 bad line(s)" in message and "line 2: not valid JSON" in message
    assert "line 4: the text ('text') is empty" in message
    assert "line 5: no text field 'text' (fields: utterance, label); name it with --text-column" in message
    assert "--skip-bad" in message
    assert read_intents(path, skip_bad=True) == [("refund me", "refund"), ("where is it", "shipping")]


def test_missing_and_damaged_classifiers_say_what_to_do(tmp_path: Path, intent_classifier_dir: Path):
    with pytest.raises(ClassifierError, match="does not exist: train it again with `assistant train classifier"):
        IntentClassifier.load(tmp_path / "nothing")
    damaged = tmp_path / "damaged"
    shutil.copytree(intent_classifier_dir, damaged)
    (damaged / "head.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ClassifierError, match="is damaged"):
        IntentClassifier.load(damaged)


def test_predict_after_reload(intent_classifier_dir: Path):
    classifier = IntentClassifier.load(intent_classifier_dir)
    texts = ["I would like a refund for my order", "where is my parcel", "I forgot my password again"]
    predictions = classifier.predict(texts)
    assert [label for label, _ in predictions] == ["refund", "shipping", "password"]
    assert all(0.0 < p <= 1.0 for _, p in predictions)
    assert classifier.predict([]) == []


def test_eval_intents_json_is_the_last_line(tmp_path: Path, intent_classifier_dir: Path):
    testset = tmp_path / "test.csv"
    testset.write_text("text,category\nI want a refund,refund\nwhere is my package now,shipping\n"
                       "tell me a funny joke,oos\n")
    result = assistant("eval", "intents", "--model", str(intent_classifier_dir), "--testset", str(testset),
                       "--label-column", "category", "--json", "--out", str(tmp_path / "items.jsonl"))
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(payload)[:6] == ["n", "accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "oos_precision"]
    assert payload["n"] == 3 and payload["in_scope_accuracy"] == 1.0
    records = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert records[0]["label"] == "refund" and set(records[0]) == {"text", "label", "predicted", "probability"}
    missing = assistant("eval", "intents", "--model", str(tmp_path / "none"), "--testset", str(testset),
                        "--label-column", "category")
    assert missing.returncode == 2 and "train it again with `assistant train classifier" in missing.stderr


def test_the_dialogue_manager_escalates_a_configured_intent(make_manager, intent_classifier_dir: Path):
    manager = make_manager(classifier=str(intent_classifier_dir), escalate_intents=["refund"])
    view = TurnView.collect(manager.respond(None, "I want a refund for my order"))
    assert view.escalated and view.final.reason == "intent"
    assert "intent refund" in view.final.reason_detail
    assert any(isinstance(e, Escalated) for e in manager.respond(None, "please give me a refund"))
    answered = TurnView.collect(manager.respond(None, "How do I reset my password?"))
    assert not answered.escalated and answered.final.reason != "intent"


def test_without_a_classifier_no_intent_is_set(make_manager, settings):
    assert open_classifier(settings) is None  # none configured
    manager = make_manager(escalate_intents=["refund"])
    assert manager.classifier is None
    assert not TurnView.collect(manager.respond(None, "I want a refund for my order")).escalated
