import pytest

from assistant.errors import InvalidFeedback, StoreUnavailable
from assistant.store import Store
from knowledge import Hit

HEAD = "0004"


def test_schema_comes_from_migrations_and_rows_roundtrip(store_url):
    store = Store.open(store_url)
    assert {"alembic_version", "conversations", "messages", "retrievals", "feedback", "escalations"} <= set(
        store.tables())
    assert store.upgrade() == HEAD  # idempotent
    conversation = store.ensure_conversation(None, "cli")
    question = store.add_message(conversation, "user", "How do refunds work?", "cli")
    reply = store.add_message(conversation, "assistant", "Within 14 days [1].", "cli", reply_to=question.id,
                              decision="answer", reason="r", model_id="m", adapter_id=None, retrieval_s=0.01,
                              first_token_s=0.2, total_s=1.5, citations=[{"n": 1, "doc_id": "billing/refunds"}])
    store.add_retrievals(reply.id, [Hit("billing/refunds", "billing/refunds#0", "Refunds", "t", "", 0.03, 0.9)])
    store.add_feedback(conversation, reply.id, -1, "wrong")
    ticket = store.add_escalation(conversation, "customer asked for a human")
    assert store.history(conversation) == [{"role": "user", "content": "How do refunds work?"},
                                           {"role": "assistant", "content": "Within 14 days [1]."}]
    [row] = store.retrievals(reply.id)
    assert (row.rank, row.doc_id, row.confidence) == (1, "billing/refunds", 0.9)
    assert store.messages(conversation)[1].citations == [{"n": 1, "doc_id": "billing/refunds"}]
    assert [f.rating for f in store.feedback(reply.id)] == [-1]
    assert store.escalations(conversation)[0].id == ticket.id
    # a second Store on the same URL (a restart) sees everything
    assert Store.open(store_url).history(conversation)[1]["content"] == "Within 14 days [1]."


def test_feedback_needs_an_assistant_reply_of_the_same_conversation(store_url):
    store = Store.open(store_url)
    conversation, other = store.ensure_conversation(None, "web"), store.ensure_conversation(None, "web")
    question = store.add_message(conversation, "user", "hi", "web")
    reply = store.add_message(conversation, "assistant", "hello", "web", reply_to=question.id)
    elsewhere = store.add_message(other, "assistant", "hello", "web")
    errors = set()
    for message_id in (question.id, elsewhere.id, reply.id + 1000, 2**40, -1, "1", None):
        with pytest.raises(InvalidFeedback) as caught:
            store.add_feedback(conversation, message_id, 1)
        errors.add(str(caught.value))
    assert errors == {"feedback can only be given on a reply of this conversation"}  # no hint which ids exist
    with pytest.raises(InvalidFeedback):
        store.add_feedback(other, reply.id, 1)
    with pytest.raises(InvalidFeedback, match="rating must be"):
        store.add_feedback(conversation, reply.id, 5)
    assert store.feedback(reply.id) == [] and store.feedback(elsewhere.id) == []
    store.add_feedback(conversation, reply.id, 1, "thanks")
    assert [(f.rating, f.comment) for f in store.feedback(reply.id)] == [(1, "thanks")]


def test_unreachable_database_is_a_clear_error():
    with pytest.raises(StoreUnavailable, match="cannot reach the conversation store at postgresql.*:1/x.*"
                                               "ASSISTANT_DATABASE_URL") as caught:
        Store.open("postgresql+psycopg://nobody:pw@127.0.0.1:1/x")
    assert "nobody:***@" in str(caught.value) and "\n" not in str(caught.value)


def test_malformed_url_is_a_clear_error():
    with pytest.raises(StoreUnavailable, match="not a usable SQLAlchemy URL"):
        Store.open("not a url")


def test_upgrading_a_store_with_logged_rows_keeps_them(store_url):
    from sqlalchemy import text

    old = Store(store_url)
    assert old.upgrade("0001") == "0001"
    with old.engine.begin() as conn:  # rows written by the first release, in its schema
        conn.execute(text("INSERT INTO conversations (id, channel, created_at) VALUES ('c', 'web', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO messages (id, conversation_id, role, content, channel, created_at) "
                          "VALUES (1, 'c', 'user', 'hi', 'web', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO messages (id, conversation_id, role, content, channel, created_at, reply_to, "
                          "decision) VALUES (2, 'c', 'assistant', 'hello', 'web', CURRENT_TIMESTAMP, 1, 'answer')"))
        conn.execute(text("INSERT INTO retrievals (message_id, rank, doc_id, chunk_id, score, confidence) "
                          "VALUES (2, 1, 'd', 'd#0', 0.1, 0.9)"))
        conn.execute(text("INSERT INTO feedback (message_id, rating, created_at) VALUES (2, 1, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO conversations (id, channel, created_at) VALUES ('d', 'api', CURRENT_TIMESTAMP)"))
        for ticket, conversation, day in ((1, "c", 1), (2, "d", 2), (3, "c", 3)):  # handoffs of the first release
            conn.execute(text("INSERT INTO escalations (id, conversation_id, reason, created_at) "
                              f"VALUES ({ticket}, '{conversation}', 'asked for a human', '2026-01-0{day} 10:00:00')"))
    upgraded = Store.open(store_url)
    messages = upgraded.messages("c")
    assert [m.content for m in messages] == ["hi", "hello"] and not messages[1].pii_redacted
    assert upgraded.retrievals(2)[0].doc_id == "d" and upgraded.feedback(2)[0].rating == 1
    assert upgraded.upgrade() == HEAD
    # tickets opened before ticket events existed are open tickets, opened when they were created
    assert [(t["ticket_id"], t["status"]) for t in upgraded.tickets()] == [(1, "open"), (2, "open"), (3, "open")]
    assert upgraded.active_ticket("c") == 1 and upgraded.active_ticket("d") == 2
    [event] = upgraded.ticket_events(2)
    assert (event.status, event.created_at.day) == ("open", 2)
    assert upgraded.set_ticket_status(1, "assigned", "ana") == "assigned" and upgraded.held_by("c") == "ana"
