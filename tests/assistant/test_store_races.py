"""Store writes that race: threads (or processes) against one store, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from assistant.errors import RateLimited
from assistant.store import Message, Store


def race(n: int, action: Callable[[int], object]) -> list[object]:
    """Run `action(i)` in n threads released at once; each result, or the exception it raised."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            results[i] = action(i)
        except Exception as err:  # the race's outcome is what we look at
            results[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def errors(results: list[object]) -> list[Exception]:
    return [r for r in results if isinstance(r, Exception)]


def test_simultaneous_first_messages_start_one_conversation(store_url):
    store = Store.open(store_url)
    conversation_id = uuid.uuid4().hex
    results = race(16, lambda i: store.ensure_conversation(conversation_id, "web"))
    assert errors(results) == [] and set(results) == {conversation_id}
    assert [c.id for c in store.conversations()] == [conversation_id]


def test_one_agent_wins_a_takeover(store_url):
    store = Store.open(store_url)
    conversation = store.ensure_conversation(None, "web")
    ticket = store.add_escalation(conversation, "asked for a human").id
    results = race(8, lambda i: store.set_ticket_status(ticket, "assigned", f"agent-{i}"))
    winners = [i for i, r in enumerate(results) if r == "assigned"]
    assert len(winners) == 1
    lost = errors(results)
    assert len(lost) == 7 and all(isinstance(e, ValueError) and "is assigned" in str(e) for e in lost)
    assert [e.status for e in store.ticket_events(ticket)] == ["open", "assigned"]
    assert store.held_by(conversation) == f"agent-{winners[0]}"


def test_simultaneous_handoffs_open_one_ticket(store_url):
    store = Store.open(store_url)
    conversation = store.ensure_conversation(None, "web")
    results = race(16, lambda i: store.open_ticket(conversation, "customer pressed Talk to a human", f"summary {i}"))
    assert errors(results) == []
    assert len({ticket for ticket, _ in results}) == 1 and sum(created for _, created in results) == 1
    assert len(store.escalations(conversation)) == 1
    # the older call opens no second ticket either, and a resolved ticket makes room for a new one
    assert len({t for t in race(8, lambda i: store.add_escalation(conversation, "asked").id)}) == 1
    store.set_ticket_status(results[0][0], "resolved", "ana")
    reopened = race(8, lambda i: store.open_ticket(conversation, "asked again"))
    assert sum(created for _, created in reopened) == 1 and len(store.escalations(conversation)) == 2
    assert store.active_ticket(conversation) == reopened[0][0] != results[0][0]


def test_simultaneous_messages_do_not_slip_past_the_rate_limit(store_url):
    store = Store.open(store_url)
    conversation = uuid.uuid4().hex  # a new conversation: its first messages all arrive at once
    results = race(24, lambda i: store.add_customer_message(conversation, f"message {i}", "web", max_per_minute=12))
    accepted = [r for r in results if isinstance(r, Message)]
    assert len(accepted) == 12 and len(errors(results)) == 12
    assert all(isinstance(e, RateLimited) and "12 messages in a minute" in str(e) for e in errors(results))
    stored = store.messages(conversation)
    assert sorted(m.id for m in stored) == sorted(m.id for m in accepted)
    assert len({m.content for m in stored}) == 12 and store.count_recent(conversation, "user", 60) == 12
