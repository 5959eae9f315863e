import pytest

from assistant.errors import StoreUnavailable
from assistant.store import Store
from knowledge import Hit


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


def test_schema_comes_from_migrations_and_rows_roundtrip(store_url):
    store = Store.open(store_url)
    assert {"alembic_version", "conversations", "messages", "retrievals", "feedback", "escalations"} <= set(
        store.tables())
    assert store.upgrade() == "0002"  # idempotent
    conversation = store.ensure_conversation(None, "cli")
    question = store.add_message(conversation, "user", "How do refunds work?", "cli")
    reply = store.add_message(conversation, "assistant", "Within 14 days [1].", "cli", reply_to=question.id,
                              decision="answer", reason="r", model_id="m", adapter_id=None, retrieval_s=0.01,
                              first_token_s=0.2, total_s=1.5, citations=[{"n": 1, "doc_id": "billing/refunds"}])
    store.add_retrievals(reply.id, [Hit("billing/refunds", "billing/refunds#0", "Refunds", "t", "", 0.03, 0.9)])
    store.add_feedback(reply.id, -1, "wrong")
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


def test_feedback_needs_an_assistant_message(store_url):
    store = Store.open(store_url)
    conversation = store.ensure_conversation(None, "web")
    question = store.add_message(conversation, "user", "hi", "web")
    with pytest.raises(ValueError, match="no assistant message"):
        store.add_feedback(question.id, 1)
    with pytest.raises(ValueError, match="rating must be"):
        store.add_feedback(question.id, 5)


def test_unreachable_database_is_a_clear_error():
    with pytest.raises(StoreUnavailable, match="cannot reach the conversation store at postgresql.*:1/x.*"
                                               "ASSISTANT_DATABASE_URL") as caught:
        Store.open("postgresql+psycopg://nobody:pw@127.0.0.1:1/x")
    assert "nobody:***@" in str(caught.value) and "\n" not in str(caught.value)


def test_malformed_url_is_a_clear_error():
    with pytest.raises(StoreUnavailable, match="not a usable SQLAlchemy URL"):
        Store.open("not a url")
