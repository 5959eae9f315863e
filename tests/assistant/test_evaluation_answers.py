import json
import re

import pytest

from assistant.bootstrap import build_dialogue_manager
from assistant.evaluation.answers import evaluate_answers, fact_recall
from assistant.evaluation.testsets import TestItem, load_testset
from assistant.evaluation.text_metrics import rouge_l, token_f1
from assistant.generation import ScriptedGenerator
from knowledge.demo_data import TESTSET

KEYS = ["n", "n_answerable", "n_unanswerable", "answer_rate", "abstention", "groundedness", "fallback_rate",
        "citation_precision", "fact_recall", "wrong_fact_rate", "escalation_rate", "token_f1", "rouge_l",
        "latency_p50_s", "latency_p95_s", "first_sentence_p50_s"]


def quote_first_source(messages):
    """A generator that answers with the first evidence line of article [1]: grounded by construction."""
    match = re.search(r"^\[1\] .*\n> (.*)$", messages[-1]["content"], re.MULTILINE)
    return f"{match.group(1)} [1]" if match else ""


def test_fact_recall_counts_the_reference_facts_found():
    assert fact_recall("The link is valid for 60 minutes [1].", "Valid for 60 minutes, and only once.") == 0.5
    assert fact_recall("Open the app.", "Open the app.") is None  # nothing checkable to recall


def test_text_metrics():
    assert token_f1("refunds take 5 days", "refunds take 5 business days") == pytest.approx(2 * 1 * 0.8 / 1.8)
    assert rouge_l("a b c d", "a x c d") == pytest.approx(0.75)
    assert token_f1("", "x") == 0.0 and rouge_l("x", "") == 0.0


def test_eval_answers_keys_records_and_the_abstention_trade_off(settings):
    items = load_testset(TESTSET)[:6] + [i for i in load_testset(TESTSET) if not i.answerable][:3]
    items.append(TestItem("h1", "and how long is it valid?", ("accounts/reset-password",),
                          ({"role": "user", "content": "How do I reset my password?"},
                           {"role": "assistant", "content": "Use the Forgot password link."}), "60 minutes"))
    manager = build_dialogue_manager(settings, generator=ScriptedGenerator(quote_first_source))
    summary, records = evaluate_answers(manager, items, progress=False)
    assert list(summary)[: len(KEYS)] == KEYS and "before_check" in summary
    assert summary["n"] == 10 and summary["n_unanswerable"] == 3 and summary["groundedness"] == 1.0
    assert summary["wrong_fact_rate"] is not None and summary["first_sentence_p50_s"] is not None
    record = records[0]
    assert {"id", "question", "answer", "decision", "abstained", "escalated", "fallback", "cited_doc_ids",
            "passages", "latency_s"} <= set(record)
    assert "[1]" not in record["answer"] and record["passages"][0]["text"]
    seeded = [r for r in records if r["id"] == "h1"][0]
    assert seeded["decision"] in ("answer", "abstain")
    eval_conversations = [c for c in manager.store.conversations() if c.channel == "eval"]
    assert len(eval_conversations) == 10

    cautious = build_dialogue_manager(settings.model_copy(update={"abstain_below": 1.0}),
                                      generator=ScriptedGenerator(quote_first_source))
    careful, _ = evaluate_answers(cautious, items, progress=False)
    assert careful["abstention"] == 1.0 and careful["answer_rate"] == 0.0
    assert careful["token_f1"] < summary["token_f1"] / 2  # abstaining on everything is no win


def test_eval_answers_cli_with_a_real_tiny_model(tiny_model_dir, hash_index_dir, tmp_path):
    from tests.test_cli import assistant

    out = tmp_path / "answers.jsonl"
    result = assistant("eval", "answers", "--limit", "3", "--json", "--out", str(out),
                       env={"ASSISTANT_EMBEDDER": "hash", "ASSISTANT_INDEX": str(hash_index_dir),
                            "ASSISTANT_MODEL": str(tiny_model_dir), "ASSISTANT_MAX_NEW_TOKENS": "8",
                            "ASSISTANT_ABSTAIN_BELOW": "0.01"})
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 3 and list(summary)[: len(KEYS)] == KEYS
    assert len(out.read_text().splitlines()) == 3
