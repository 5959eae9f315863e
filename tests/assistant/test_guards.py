import pytest

from assistant.dialogue.policies import (
    ABSTAIN,
    ANSWER,
    ESCALATE,
    Action,
    TurnLimits,
    TurnState,
    asks_for_human,
    decide,
    frustration,
    is_abusive,
)
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
                                  "connect me to a real person", "transfer me to an agent now",
                                  "This is useless, get me an agent", "I need a human", "I want a real person"])
def test_explicit_requests_for_a_human(text):
    assert asks_for_human(text)


@pytest.mark.parametrize("text", ["How do I reset my password?", "my travel agent booked it",
                                  "Is the invoice human-readable?", "Do I need an agent to install it?",
                                  "I want the agent app on my phone"])
def test_ordinary_questions_are_not_requests_for_a_human(text):
    assert not asks_for_human(text)


def _hit(confidence: float) -> Hit:
    return Hit("d", "d#0", "T", "text", "", 0.03, confidence)


def facts(text, confidence=0.9, previous=(), topics=(), **state):
    hits = [_hit(confidence)] if confidence is not None else []
    limits = TurnLimits(abstain_below=0.5, always_human_topics=topics, min_evidence=0.5)
    return TurnState(text, hits=hits, previous_decisions=previous, limits=limits, **state)


def test_decision_reads_calibrated_confidence_with_reason_code_and_detail():
    assert decide(facts("refunds?")).action == ANSWER
    low = decide(facts("refunds?", 0.2))
    assert low.action == ABSTAIN and low.code == "low_confidence" and "0.20 below 0.50" in low.detail
    assert decide(facts("refunds?", None)).code == "no_passage"


def test_policies_in_priority_order_each_with_its_code():
    assert decide(facts("agent please", held_by="ana")).action == Action.HELD  # held beats everything
    assert decide(facts("refunds?", recent_messages=12)).code == "rate_limit"
    assert decide(facts("you stupid bot", 0.2)).code == "abuse"
    assert decide(facts("refunds?", evidence_score=0.3)).code == "no_evidence"
    assert decide(facts("refunds?", evidence_score=0.8)).action == ANSWER
    assert decide(facts("cancel it", intent=("cancel", 0.9))).action == ANSWER  # not a human intent
    limits = TurnLimits(escalate_intents=("legal",))
    assert decide(TurnState("see you in court", intent=("legal", 0.8), limits=limits)).code == "intent"
    assert decide(TurnState("weather?", intent=("oos", 0.9))).code == "out_of_scope"


@pytest.mark.parametrize("text, previous, code", [
    ("let me talk to a human", (), "human_request"),
    ("I will take legal action against you", (), "human_topic"),
    ("please close my account today", (), "human_topic"),
    ("This is USELESS and RIDICULOUS, I am so fed up!!", (), "frustration"),
])
def test_escalation_triggers_each_log_their_reason(text, previous, code):
    from assistant.config import load_settings

    decision = decide(facts(text, previous=previous, topics=load_settings().always_human_topics))
    assert decision.action == ESCALATE and decision.code == code


def test_second_abstention_in_a_row_escalates():
    assert decide(facts("warranty on batteries?", 0.1, previous=["answer"])).action == ABSTAIN
    second = decide(facts("and for the doorbell?", 0.1, previous=["answer", "abstain"]))
    assert second.action == ESCALATE and second.code == "repeated_abstention"


def test_mild_annoyance_and_ordinary_words_do_not_escalate():
    assert frustration("the app is a bit slow today") == 0
    assert decide(facts("I am annoyed the package is late, where is it?")).action == ANSWER
    assert is_abusive("you stupid bot") and not is_abusive("How do I reset the hub?")


@pytest.mark.parametrize("text", ["order NW-10482337 placed 2024-05-17", "invoice 55501234", "serial 8842 1123 99",
                                  "Call us on 0800 and press 2", "order 1048233755", "shipped 17.05.2024",
                                  "card ending 4111.1111.1111.1112 (fails Luhn)", "version 10.4.2 of the app",
                                  "open 9:00 to 17:30, 12/05/2024", "tracking 1Z999AA10123456784",
                                  "iban GB82 WEST 1234 5698 7654 33 (fails mod-97)", "price 1.234.567,89"])
def test_order_numbers_dates_and_serials_are_not_redacted(text):
    from assistant.guards import redact_pii

    assert redact_pii(text) == (text, [])


PII_FORMATS = [
    ("EMAIL", "mail jo@x.example please", "jo@x.example"),
    ("EMAIL", "write to Jo.Doe+billing@mail.example.co.uk.", "Jo.Doe+billing@mail.example.co.uk"),
    ("EMAIL", "first_last@sub-domain.example.org is mine", "first_last@sub-domain.example.org"),
    ("EMAIL", "JANE.DOE@EXAMPLE.COM", "JANE.DOE@EXAMPLE.COM"),
    ("PHONE", "my number 555 010 9999", "555 010 9999"),
    ("PHONE", "call me on 555 123 4567", "555 123 4567"),
    ("PHONE", "my phone is (555) 010-9999", "(555) 010-9999"),
    ("PHONE", "reach me at 555.010.9999 after six", "555.010.9999"),
    ("PHONE", "mobile: 555-010-9999", "555-010-9999"),
    ("PHONE", "my number is 5550109999", "5550109999"),
    ("PHONE", "212-555-0188 is where I am", "212-555-0188"),
    ("PHONE", "I'm on +44 20 7946 0958", "+44 20 7946 0958"),
    ("PHONE", "+1 (555) 010-9999", "+1 (555) 010-9999"),
    ("PHONE", "ring 020 7946 0958 tomorrow", "020 7946 0958"),
    ("PHONE", "0049 30 1234567", "0049 30 1234567"),
    ("PHONE", "text me on 07700 900123", "07700 900123"),
    ("PHONE", "appelez le +33 1 23 45 67 89", "+33 1 23 45 67 89"),
    ("CARD", "card 4111 1111 1111 1111", "4111 1111 1111 1111"),
    ("CARD", "card 4111-1111-1111-1111", "4111-1111-1111-1111"),
    ("CARD", "a card written 4111.1111.1111.1111", "4111.1111.1111.1111"),
    ("CARD", "4111111111111111 was charged", "4111111111111111"),
    ("CARD", "mastercard 5500 0000 0000 0004", "5500 0000 0000 0004"),
    ("CARD", "amex 3782 822463 10005", "3782 822463 10005"),
    ("CARD", "discover 6011.0009.9013.9424", "6011.0009.9013.9424"),
    ("IBAN", "iban GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN", "GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("IBAN", "iban gb82-west-1234-5698-7654-32", "gb82-west-1234-5698-7654-32"),
    ("IBAN", "to DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
    ("IBAN", "FR14 2004 1010 0505 0001 3M02 606", "FR14 2004 1010 0505 0001 3M02 606"),
    ("IBAN", "NL91ABNA0417164300", "NL91ABNA0417164300"),
]


@pytest.mark.parametrize("kind, text, value", PII_FORMATS)
def test_each_written_form_of_personal_data_is_redacted(kind, text, value):
    from assistant.guards import redact_pii

    assert redact_pii(text) == (text.replace(value, f"[{kind}]"), [(kind, value)])


def test_pii_kinds_and_checksums():
    from assistant.guards import redact_pii

    text, found = redact_pii("mail jo@x.example, card 4111 1111 1111 1111 (not 4111 1111 1111 1112), "
                             "iban gb82-west-1234-5698-7654-32, call me on 555 123 4567")
    assert text == "mail [EMAIL], card [CARD] (not 4111 1111 1111 1112), iban [IBAN], call me on [PHONE]"
    assert [kind for kind, _ in found] == ["EMAIL", "IBAN", "CARD", "PHONE"]


@pytest.mark.parametrize("text", ["I feel so stupid, I forgot my password", "Is this a dumb question?",
                                  "When is human support available?", "Do you have live agent chat on weekends?",
                                  "Can my manager of the team account see invoices?"])
def test_ordinary_messages_trigger_nothing(text):
    assert not asks_for_human(text) and not is_abusive(text) and frustration(text) < 2


def test_always_human_topics_must_be_valid_expressions(monkeypatch):
    from assistant.config import load_settings
    from assistant.errors import ConfigError

    monkeypatch.setenv("ASSISTANT_ALWAYS_HUMAN_TOPICS", '["refund (now|today)", "chargeback"]')
    assert load_settings().always_human_topics == ["refund (now|today)", "chargeback"]
    monkeypatch.setenv("ASSISTANT_ALWAYS_HUMAN_TOPICS", "(unclosed")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        load_settings()


def test_a_name_the_knowledge_base_never_mentions_abstains_and_a_second_time_escalates():
    unknown = decide(facts("Can I pay in Bitcoin?", evidence_score=0.9, unknown_names=["Bitcoin"]))
    assert unknown.action == ABSTAIN and unknown.code == "unknown_name" and "Bitcoin" in unknown.detail
    again = decide(facts("Or Ethereum?", evidence_score=0.9, unknown_names=["Ethereum"], previous=[ABSTAIN]))
    assert again.action == ESCALATE and again.code == "repeated_abstention"
    assert decide(facts("Can I pay by card?", evidence_score=0.9)).action == ANSWER
    off = TurnLimits(abstain_below=0.5, min_evidence=0.5, abstain_on_unknown_names=False)
    assert decide(TurnState("Bitcoin?", hits=[_hit(0.9)], evidence_score=0.9, unknown_names=["Bitcoin"],
                            limits=off)).action == ANSWER
