import pytest

from assistant.dialogue import Escalated, Final, Sources, Token
from assistant.errors import InvalidMessage
from assistant.store.tables import Message


def run(manager, text, conversation_id="conv-1", channel="web"):
    return list(manager.respond(conversation_id, text, channel=channel))


def test_answer_streams_cites_and_logs_the_turn(make_manager):
    manager = make_manager()
    events = run(manager, "How do I reset my password?")
    tokens = [e.text for e in events if isinstance(e, Token)]
    [sources] = [e for e in events if isinstance(e, Sources)]
    final = events[-1]
    assert isinstance(final, Final) and final.decision == "answer"
    assert "".join(tokens).strip() == final.text
    assert final.citations[0]["doc_id"] == "accounts/reset-password"  # the passage that supports the reply
    assert "accounts/reset-password" in [h.doc_id for h in sources.hits]
    rows = manager.store.messages("conv-1")
    assert [m.role for m in rows] == ["user", "assistant"]
    reply: Message = rows[1]
    assert reply.id == final.message_id and reply.reply_to == rows[0].id
    assert reply.model_id == "scripted" and reply.decision == "answer"
    assert reply.retrieval_s is not None and reply.first_token_s is not None and reply.total_s >= reply.first_token_s
    assert len(manager.store.retrievals(reply.id)) == len(sources.hits)


def test_prompt_holds_numbered_sources_and_history(make_manager):
    manager = make_manager()
    run(manager, "How do I reset my password?")
    run(manager, "and what if I don't get the email?")
    prompt = manager.generator.calls[-1]
    assert prompt[0]["role"] == "system" and "only the facts in the sources" in prompt[0]["content"]
    assert prompt[1]["content"] == "How do I reset my password?"
    assert prompt[-1]["content"].startswith("Sources:\n[1] ")
    assert prompt[-1]["content"].endswith("Customer question: and what if I don't get the email?")


def test_low_confidence_abstains_and_offers_a_human(make_manager):
    manager = make_manager(abstain_below=1.0)
    events = run(manager, "What is the capital of Peru?")
    assert not any(isinstance(e, Token) for e in events)
    final = events[-1]
    assert final.decision == "abstain" and "human agent" in final.text and final.citations == []
    assert manager.generator.calls == []  # the model never got a chance to improvise


def test_explicit_request_escalates_with_a_ticket(make_manager):
    manager = make_manager()
    events = run(manager, "I want to talk to a human")
    [escalated] = [e for e in events if isinstance(e, Escalated)]
    assert f"#{escalated.ticket_id}" in events[-1].text and events[-1].decision == "escalate"
    assert manager.store.escalations("conv-1")[0].reason == "customer asked for a human"


def test_button_escalation_is_recorded(make_manager):
    manager = make_manager()
    final = [e for e in manager.escalate("conv-2") if isinstance(e, Final)][0]
    assert manager.store.escalations("conv-2")[0].id == int(final.text.split("#")[1].split(")")[0])


@pytest.mark.parametrize("reply", ["", "   "])
def test_empty_generation_falls_back_to_the_passage(make_manager, reply):
    manager = make_manager(reply=reply)
    final = run(manager, "How do I reset my password?")[-1]
    assert final.text.strip() and final.text.rstrip().endswith("]") and "**" not in final.text
    assert "extractive" in final.reason


def test_generation_failure_still_answers(make_manager):
    manager = make_manager()

    def broken(messages, **params):
        yield "Half a"
        raise RuntimeError("out of memory")

    manager.generator.stream = broken
    final = run(manager, "How do I reset my password?")[-1]
    assert final.text.endswith("]") and "generation failed" in final.reason and final.decision == "answer"


def test_invalid_message_is_refused_before_anything_is_logged(make_manager):
    manager = make_manager()
    run(manager, "How do I reset my password?")
    before = manager.store.messages("conv-1")
    for bad in ["", "x" * 20_000, "\x00\x01binary"]:
        with pytest.raises(InvalidMessage):
            run(manager, bad)
    assert manager.store.messages("conv-1") == before


def test_feedback_is_stored(make_manager):
    manager = make_manager()
    final = run(manager, "How do I reset my password?")[-1]
    manager.record_feedback(final.message_id, 1)
    assert [f.rating for f in manager.store.feedback(final.message_id)] == [1]
