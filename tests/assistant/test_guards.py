import pytest

from assistant.dialogue.policies import ABSTAIN, ANSWER, ESCALATE, asks_for_human, decide
from assistant.errors import InvalidMessage
from assistant.guards import check_message
from knowledge import Hit


def test_message_is_normalised():
    assert check_message("  Cafe\u0301 hours?\n", 100) == "Café hours?"


@pytest.mark.parametrize("text, problem", [
    ("", "empty"), ("   \n", "empty"), ("x" * 20_000, "20,000 characters long and the limit is 4,000"),
    ("abc\x00\x01\x02def", "does not look like text"), ("bad \ufffd\ufffd bytes", "does not look like text"),
    (b"\xff\xfe\xfa", "not UTF-8"), (None, "must be text"),
])
def test_bad_messages_say_what_is_wrong(text, problem):
    with pytest.raises(InvalidMessage, match=problem):
        check_message(text, 4000)


@pytest.mark.parametrize("text", ["agent", "Human please!", "I want to talk to a human", "can I speak with someone",
                                  "connect me to a real person", "transfer me to an agent now"])
def test_explicit_requests_for_a_human(text):
    assert asks_for_human(text)


@pytest.mark.parametrize("text", ["How do I reset my password?", "my travel agent booked it",
                                  "Is the invoice human-readable?"])
def test_ordinary_questions_are_not_requests_for_a_human(text):
    assert not asks_for_human(text)


def _hit(confidence: float) -> Hit:
    return Hit("d", "d#0", "T", "text", "", 0.03, confidence)


def test_decision_reads_calibrated_confidence_with_reason():
    assert decide("refunds?", [_hit(0.9)], 0.5).action == ANSWER
    low = decide("refunds?", [_hit(0.2)], 0.5)
    assert low.action == ABSTAIN and "0.20 below 0.50" in low.reason
    assert decide("refunds?", [], 0.5).action == ABSTAIN
    assert decide("let me talk to a human", [_hit(0.9)], 0.5).action == ESCALATE
