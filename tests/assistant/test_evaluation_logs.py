"""`eval logs`: figures from the conversation log, on hand-built logs (exact values) and on a store filled by
real dialogue-manager turns (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from assistant.dialogue import Final
from assistant.errors import InvalidOption
from assistant.evaluation.gaps import cluster, gap_questions, knowledge_gaps, topic_words
from assistant.evaluation.logs import Activity, ConversationLog, load_activity, log_figures
from assistant.evaluation.report import period_figures
from assistant.periods import Period, parse_period
from assistant.store import Message

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def message(mid: int, cid: str, role: str, *, minutes: int = 0, decision: str | None = None, code: str | None = None,
            reply_to: int | None = None, first: float | None = None, total: float | None = None,
            content: str = "text") -> Message:
    return Message(id=mid, conversation_id=cid, role=role, content=content, channel="web",
                   created_at=T0 + timedelta(minutes=minutes), decision=decision, reason_code=code, reply_to=reply_to,
                   first_token_s=first, total_s=total)


def hand_built() -> Activity:
    """Four conversations: answered and liked; declined then handed over; answered and disliked (next day);
    two answers, no feedback."""
    a = ConversationLog("a", [message(1, "a", "user"), message(2, "a", "assistant", decision="answer", code="answer",
                                                                   reply_to=1, first=0.5, total=2.0)], {2: 1})
    b = ConversationLog("b", [
        message(3, "b", "user", content="Do you ship to Mars?"),
        message(4, "b", "assistant", decision="abstain", code="no_evidence", reply_to=3, first=0.2, total=0.3),
        message(5, "b", "user", content="a person please"),
        message(6, "b", "assistant", decision="escalate", code="human_request", reply_to=5, total=0.1),
        message(7, "b", "agent", content="Hi, I can help")])
    c = ConversationLog("c", [message(8, "c", "user", minutes=24 * 60, content="Why was I charged twice?"),
                              message(9, "c", "assistant", minutes=24 * 60, decision="answer", code="answer",
                                      reply_to=8, first=1.5, total=4.0)], {9: -1})
    d = ConversationLog("d", [message(10, "d", "user", minutes=24 * 60),
                              message(11, "d", "assistant", minutes=24 * 60, decision="answer", code="answer",
                                      reply_to=10, first=1.0, total=3.0),
                              message(12, "d", "user", minutes=24 * 60),
                              message(13, "d", "assistant", minutes=24 * 60, decision="answer", code="answer",
                                      reply_to=12, first=0.7, total=1.0)])
    return Activity(Period(), [a, b, c, d])


def test_figures_on_a_hand_built_log_are_exact():
    figures = log_figures(hand_built())
    assert figures["conversations"] == 4 and figures["turns"] == 6  # customer messages
    assert figures["resolution_rate"] == 0.5  # a and d: c got a thumbs-down, b was handed over
    assert figures["containment_rate"] == 0.75 and figures["escalation_rate"] == 0.25
    assert figures["escalation_reasons"] == {"human_request": 1}
    assert figures["thumbs_up_rate"] == 1 / 6 and figures["thumbs_down_rate"] == 1 / 6  # of 6 bot replies
    # first token over 5 replies [0.2, 0.5, 0.7, 1.0, 1.5]; total over 6 [0.1, 0.3, 1.0, 2.0, 3.0, 4.0]
    assert figures["first_token_p50_s"] == 0.7 and figures["first_token_p95_s"] == 1.5
    assert figures["total_p50_s"] == 1.5 and figures["total_p95_s"] == 4.0
    assert figures["feedback"] == {"replies": 6, "thumbs_up": 1, "thumbs_down": 1}
    assert figures["daily"] == [
        {"day": "2026-03-02", "conversations": 2, "turns": 3, "resolution_rate": 0.5, "escalation_rate": 0.5,
         "thumbs_up": 1, "thumbs_down": 0},
        {"day": "2026-03-03", "conversations": 2, "turns": 3, "resolution_rate": 0.5, "escalation_rate": 0.0,
         "thumbs_up": 0, "thumbs_down": 1}]


def test_an_empty_log_has_null_figures():
    figures = log_figures(Activity(Period(), []))
    assert figures["conversations"] == 0 and figures["turns"] == 0 and figures["daily"] == []
    assert all(figures[key] is None for key in ("resolution_rate", "containment_rate", "escalation_rate",
                                                "thumbs_up_rate", "thumbs_down_rate", "first_token_p50_s",
                                                "total_p95_s"))


def test_gap_questions_are_the_declined_and_the_disliked_ones():
    found = gap_questions(hand_built().conversations)
    assert [(q.text, q.why) for q in found] == [("Do you ship to Mars?", "declined"),
                                                ("Why was I charged twice?", "thumbs_down")]


def test_clustering_groups_near_questions_and_names_the_topic():
    import numpy as np

    vectors = np.array([[1.0, 0.0, 0.0], [0.98, 0.2, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = cluster(vectors)
    assert labels[0] == labels[1] != labels[2]
    assert cluster(vectors[:1]) == [0]
    assert topic_words(["Can I pay with PayPal?", "Do you take PayPal payments?"]).startswith("paypal")


def test_periods_parse_and_bad_ones_are_clear():
    period = parse_period("2026-03-01", "2026-03-02", "web,api")
    assert period.since == datetime(2026, 3, 1, tzinfo=UTC) and period.until == datetime(2026, 3, 3, tzinfo=UTC)
    assert period.channels == ("web", "api")
    with pytest.raises(InvalidOption, match="--since 'last week' is not a date"):
        parse_period("last week")
    with pytest.raises(InvalidOption, match="is not before --until"):
        parse_period("2026-03-05", "2026-03-01")


def say(manager, text: str, conversation_id: str | None = None, channel: str = "web") -> Final:
    return list(manager.respond(conversation_id, text, channel=channel))[-1]


def test_eval_logs_on_real_turns(make_manager, store_url):
    manager = make_manager(database_url=store_url)
    liked = say(manager, "How do I reset my password?")
    manager.record_feedback(liked.conversation_id, liked.message_id, 1)
    declined = say(manager, "Do you support Google Home?")
    assert declined.decision == "abstain"
    handed = say(manager, "I want to talk to a human")
    assert handed.decision == "escalate"
    disliked = say(manager, "How do I reset my password?")
    again = say(manager, "and on the website?", disliked.conversation_id)
    manager.record_feedback(disliked.conversation_id, again.message_id, 1)
    manager.record_feedback(disliked.conversation_id, again.message_id, -1)  # the later rating counts
    say(manager, "Do you support Google Home?", channel="eval")  # evaluation turns are not customers

    activity, figures = period_figures(manager.store, Period(), manager.retriever)
    assert figures["conversations"] == 4 and figures["turns"] == 5
    assert figures["escalation_rate"] == 0.25 and figures["containment_rate"] == 0.75
    assert figures["resolution_rate"] == 0.5  # the handed-over and the disliked conversations are not resolved
    assert figures["escalation_reasons"] == {"human_request": 1}
    assert figures["thumbs_up_rate"] == 1 / 5 and figures["thumbs_down_rate"] == 1 / 5
    assert 0 < figures["total_p50_s"] <= figures["total_p95_s"]
    questions = sorted(example for gap in figures["knowledge_gaps"] for example in gap["examples"])
    assert questions == ["Do you support Google Home?", "and on the website?"]
    assert all(gap["closest_article"]["doc_id"] for gap in figures["knowledge_gaps"])
    assert list(figures)[:13] == ["conversations", "turns", "resolution_rate", "containment_rate", "escalation_rate",
                                  "escalation_reasons", "thumbs_up_rate", "thumbs_down_rate", "first_token_p50_s",
                                  "first_token_p95_s", "total_p50_s", "total_p95_s", "knowledge_gaps"]
    with_eval = load_activity(manager.store, Period(channels=("web", "eval")))
    assert len(with_eval.conversations) == 5
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert load_activity(manager.store, Period(since=tomorrow)).conversations == []
    assert knowledge_gaps(Activity(Period(), []), manager.retriever) == []
    json.dumps(figures)  # the --json line holds nothing a JSON encoder refuses
