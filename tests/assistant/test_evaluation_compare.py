"""`eval compare` and `eval gate`: deltas and intervals on hand-built records, the gate on real manager runs."""

from __future__ import annotations

import pytest

from assistant.errors import InvalidOption
from assistant.evaluation.bootstrap import paired_bootstrap
from assistant.evaluation.compare import compare_runs, metric_deltas, paired
from assistant.evaluation.gate import GateConfig, check_metric, gate
from assistant.evaluation.model_runs import compare_models, gate_models, latest_result, run_model
from assistant.evaluation.testsets import TestItem
from assistant.generation import ScriptedGenerator, echo_evidence


def record(item_id: str, decision: str, answer: str, *, answerable: bool = True, reference: str | None = "",
           groundedness: float | None = 1.0, latency: float = 1.0, wrong: bool = False) -> dict:
    return {"id": item_id, "question": f"q {item_id}", "answer": answer, "decision": decision,
            "abstained": decision != "answer", "answerable": answerable, "reference": reference,
            "groundedness": groundedness, "fallback": False, "fact_recall": None,
            "wrong_facts": ["$9"] if wrong else [], "latency_s": latency}


A = [record("1", "answer", "reset it in settings", reference="reset it in settings"),
     record("2", "abstain", "I don't know", reference="it takes 5 days", groundedness=None),
     record("3", "answer", "we ship to Mars", answerable=False, reference=None, wrong=True),
     record("4", "answer", "thirty days", reference="30 days")]
B = [record("1", "answer", "reset it in settings", reference="reset it in settings", latency=2.0),
     record("2", "answer", "it takes 5 days", reference="it takes 5 days", latency=2.0),
     record("3", "abstain", "I don't know", answerable=False, reference=None, groundedness=None, latency=2.0),
     record("4", "answer", "30 days", reference="30 days", latency=2.0)]


def test_deltas_on_hand_built_records_are_exact():
    deltas = metric_deltas(paired(A, B), seed=0, samples=2000)
    assert deltas["answer_rate"]["a"] == 0.6667 and deltas["answer_rate"]["b"] == 1.0
    assert deltas["answer_rate"]["delta"] == pytest.approx(1 / 3, abs=1e-4) and deltas["answer_rate"]["n"] == 3
    assert deltas["abstention"] == {"n": 1, "a": 0.0, "b": 1.0, "delta": 1.0, "ci95": [1.0, 1.0], "better": "b"}
    assert deltas["wrong_fact_rate"]["n"] == 2  # items 1 and 4: answered on both sides
    assert deltas["token_f1"]["a"] == 0.5  # (1 + 0 + 0.5) / 3: "thirty days" shares "days" with "30 days"
    assert deltas["token_f1"]["b"] == 1.0
    assert deltas["latency_s"]["delta"] == 1.0 and deltas["latency_s"]["better"] == "a"  # B is slower
    result = compare_runs("base", A, "mine", B, seed=0)
    assert result["differing"][0]["id"] in {"2", "3"}  # a changed decision ranks first
    assert {item["id"] for item in result["differing"]} == {"2", "3", "4"}  # item 1 is the same on both sides


def test_bootstrap_intervals_are_reproducible_with_a_seed():
    a = [0.1, 0.4, 0.5, 0.9, 0.3, 0.2, 0.8]
    b = [0.3, 0.5, 0.4, 1.0, 0.6, 0.2, 0.9]
    first, again, other = (paired_bootstrap(a, b, seed=seed) for seed in (7, 7, 8))
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    assert first.delta == pytest.approx(sum(b) / 7 - sum(a) / 7)
    with pytest.raises(ValueError, match="different items"):
        paired(A, B[:3])


def test_gate_rules_and_messages():
    assert check_metric("answer_rate", 0.80, 0.78, 0.03)["passed"]
    failed = check_metric("answer_rate", 0.80, 0.70, 0.03)
    assert not failed["passed"] and failed["why"] == "0.700 < 0.770 (baseline 0.800 - 0.03)"
    assert not check_metric("wrong_fact_rate", 0.05, 0.10, 0.03)["passed"]
    assert check_metric("latency_p95_s", 2.0, 2.9, 0.5)["passed"]
    assert not check_metric("latency_p95_s", 2.0, 3.1, 0.5)["passed"]
    assert not check_metric("groundedness", 0.9, None, 0.03)["passed"]
    assert check_metric("groundedness", None, None, 0.03)["passed"]


def test_gate_files_are_checked(tmp_path):
    good = tmp_path / "gate.toml"
    good.write_text("[tolerances]\nanswer_rate = 0.02\nlatency_p95_s = 1\n", encoding="utf-8")
    assert GateConfig.load(good).tolerances == {"answer_rate": 0.02, "latency_p95_s": 1.0}
    assert "answer_rate" in GateConfig.load(None).tolerances
    for text, message in [("[tolerances]\nspeed = 1\n", "'speed' is not a metric the gate knows"),
                          ("[tolerances]\nanswer_rate = -1\n", "must be a number >= 0"),
                          ("answer_rate = 0.1\n", "has no \\[tolerances\\] table"),
                          ("[tolerances\n", "is not valid TOML")]:
        good.write_text(text, encoding="utf-8")
        with pytest.raises(InvalidOption, match=message):
            GateConfig.load(good)
    with pytest.raises(InvalidOption, match="does not exist"):
        GateConfig.load(tmp_path / "nope.toml")


ITEMS = [TestItem("reset", "How do I reset my password?", ("accounts/reset-password",),
                  answer="Tap Forgot password? and follow the link."),
         TestItem("link", "How long is the password reset link valid?", ("accounts/reset-password",),
                  answer="The link is valid for 60 minutes."),
         TestItem("mars", "Do you ship to Mars?", answerable=False)]


def test_the_gate_fails_a_worse_candidate_and_passes_an_equal_one(make_manager, settings):
    """Real dialogue-manager runs: the faithful model writes the evidence's own lines; the worse one writes text
    the evidence does not support, which the check replaces by quoted passages (fallbacks; the quoted steps of the
    reset procedure overlap the reference as well as the faithful model's do, so token F1 stays within tolerance)."""
    manager = make_manager()
    runs = {name: run_model(settings, "base", ITEMS, retriever=manager.retriever, store=manager.store,
                            generator=ScriptedGenerator(reply), progress=False)
            for name, reply in [("baseline", echo_evidence), ("equal", echo_evidence),
                                ("worse", "Our rocket team delivers everything for $999 within 3 hours.")]}
    config = GateConfig({"answer_rate": 0.03, "groundedness": 0.03, "wrong_fact_rate": 0.03, "fallback_rate": 0.1,
                         "token_f1": 0.05})
    assert runs["baseline"].summary["answer_rate"] == 1.0
    equal = gate(runs["baseline"].summary, runs["equal"].summary, config)
    assert equal["passed"] and equal["failed"] == []
    worse = gate_models(settings, runs["baseline"], runs["worse"], config)
    assert not worse["passed"] and worse["failed"] == ["fallback_rate"]
    # the baseline shows the article's own reset steps (a fallback); Mars is declined, not answered
    assert worse["checks"][3]["why"] == "1.000 > 0.600 (baseline 0.500 + 0.1)"
    assert latest_result(settings, "latest-gate")["failed"] == worse["failed"]
    compared = compare_models(settings, runs["baseline"], runs["worse"])
    assert compared["deltas"]["fallback_rate"]["delta"] > 0 and compared["n"] == 3
    assert latest_result(settings, "latest-compare")["deltas"] == compared["deltas"]
    assert latest_result(settings, "evaluations/base")["n"] == 3
