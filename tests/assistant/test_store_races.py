"""Store writes that race: threads (or processes) against one store, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assistant.errors import InvalidConversationId, RateLimited
from assistant.store import Message, Store
from knowledge import Hit

ROOT = Path(__file__).resolve().parents[2]
HIT = Hit("shipping/times", "shipping/times#0", "Shipping", "Orders ship in 2 days.", "", 0.03, 0.9)


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


def test_a_turn_that_fails_while_writing_leaves_its_question_visibly_unanswered(store_url):
    store = Store.open(store_url)
    conversation = store.ensure_conversation(None, "web")
    answered = store.add_customer_message(conversation, "when does it ship?", "web", max_per_minute=12)
    reply = store.record_reply(conversation, "In 2 days [1].", "web", reply_to=answered.id, hits=[HIT, HIT],
                               decision="answer", reason="r", total_s=1.0)
    assert [r.rank for r in store.retrievals(reply.id)] == [1, 2]
    question = store.add_customer_message(conversation, "and returns?", "web", max_per_minute=12)

    def failing_hits() -> Iterator[Hit]:
        yield HIT
        raise RuntimeError("the process dies here")

    with pytest.raises(RuntimeError):
        store.record_reply(conversation, "Within 30 days.", "web", reply_to=question.id, hits=failing_hits())
    assert [m.role for m in store.messages(conversation)] == ["user", "assistant", "user"]  # no half-written reply
    assert [m.id for m in store.unanswered(conversation, older_than_s=0)] == [question.id]
    assert store.unanswered(conversation) == []  # a turn still running is not listed
    held = store.add_customer_message(conversation, "are you there?", "web", max_per_minute=12)  # an agent holds it
    assert [m.id for m in store.unanswered(conversation, older_than_s=0)] == [question.id, held.id]
    store.add_message(conversation, "agent", "Yes, looking at your return now.", "web")
    assert store.unanswered(conversation, older_than_s=0) == []


KILLED_TURN = """
import sys, time
from assistant.store import Store
from knowledge import Hit
store = Store(sys.argv[1])
question = store.add_customer_message(sys.argv[2], "where is my order?", "web", max_per_minute=12)
def hits():
    yield Hit("shipping/times", "shipping/times#0", "Shipping", "Orders ship in 2 days.", "", 0.03, 0.9)
    print("writing the reply", flush=True)
    time.sleep(120)
store.record_reply(sys.argv[2], "It ships in 2 days [1].", "web", reply_to=question.id, hits=hits())
"""


def test_kill_9_in_the_middle_of_writing_a_turn(store_url):
    store = Store.open(store_url)
    conversation = store.ensure_conversation(None, "web")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    turn = subprocess.Popen([sys.executable, "-c", KILLED_TURN, store_url, conversation], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert turn.stdout.readline().strip() == "writing the reply"
    finally:
        os.kill(turn.pid, signal.SIGKILL)
        turn.wait(timeout=30)
    restarted = Store.open(store_url)
    [question] = restarted.messages(conversation)
    assert question.role == "user" and restarted.unanswered(conversation, older_than_s=0) == [question]
    # the store still takes writes: the killed writer's lock went with it
    restarted.record_reply(conversation, "It ships in 2 days.", "web", reply_to=question.id, hits=[HIT])
    assert restarted.unanswered(conversation, older_than_s=0) == []


STARTING_SERVER = """
import sys, time
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
from assistant.store import Store
print(Store.open(sys.argv[1]).upgrade())
"""


def test_four_processes_starting_on_a_fresh_store_all_start(store_url):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start_at = str(time.time() + 4)  # past every interpreter's start-up, so they upgrade together
    servers = [subprocess.Popen([sys.executable, "-c", STARTING_SERVER, store_url, start_at], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    outcomes = [server.communicate(timeout=120) for server in servers]
    assert [server.returncode for server in servers] == [0, 0, 0, 0], [err[-400:] for _, err in outcomes]
    assert {out.strip() for out, _ in outcomes} == {Store(store_url).upgrade()}


BAD_IDS = ["x" * 65, "a\x00b", "has space", "naïve", "a/b", "1;DROP", 42, b"bytes"]


def test_conversation_ids_are_checked_before_they_reach_the_database(store_url):
    store = Store.open(store_url)
    longest = store.ensure_conversation("A-z_0" + "9" * 59, "api")
    assert len(longest) == 64 and store.conversation(longest) is not None
    calls = [
        lambda c: store.ensure_conversation(c, "web"),
        lambda c: store.add_customer_message(c, "hi", "web", max_per_minute=12),
        lambda c: store.add_message(c, "user", "hi", "web"),
        lambda c: store.record_reply(c, "hello", "web", reply_to=None),
        lambda c: store.add_feedback(c, 1, 1),
        lambda c: store.open_ticket(c, "asked"),
        store.conversation, store.messages, store.history, store.active_ticket, store.held_by, store.escalations,
        lambda c: store.messages_since(c, 0), lambda c: store.count_recent(c, "user", 60),
        lambda c: store.unanswered(c),
    ]
    for bad in BAD_IDS:
        for call in calls:
            with pytest.raises(InvalidConversationId, match="1 to 64 characters of letters, digits"):
                call(bad)
    assert [c.id for c in store.conversations()] == [longest]
