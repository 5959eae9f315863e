"""The store answers per-turn questions with indexed queries, never by reading whole tables."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import event, text

from assistant.store import Conversation, Escalation, Feedback, Message, Store, TicketEvent

CONVERSATIONS = 4000


def fill(store: Store) -> None:
    """A store with history: many conversations, each with messages and a ticket with events."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    conversations = [{"id": f"c{n}", "channel": "web", "created_at": start + timedelta(minutes=n)}
                     for n in range(CONVERSATIONS)]
    messages = [{"id": 4 * n + k + 1, "conversation_id": f"c{n}", "role": ("user", "assistant")[k % 2],
                 "content": "text", "channel": "web", "created_at": start + timedelta(minutes=n, seconds=k),
                 "reply_to": 4 * n + k if k % 2 else None} for n in range(CONVERSATIONS) for k in range(4)]
    tickets = [{"id": n + 1, "conversation_id": f"c{n}", "reason": "asked", "created_at": start}
               for n in range(CONVERSATIONS)]
    events = [{"ticket_id": n + 1, "status": status, "agent": "ana", "created_at": start}
              for n in range(CONVERSATIONS) for status in ("open", "assigned", "resolved")[: 1 + n % 3]]
    with store.engine.begin() as conn:
        for table, rows in ((Conversation, conversations), (Message, messages), (Escalation, tickets),
                            (TicketEvent, events)):
            conn.execute(table.__table__.insert(), rows)
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def full_scans(store: Store, statements: list[tuple[str, object]]) -> list[str]:
    """Plan lines of `statements` that read a whole table."""
    postgres = store.engine.dialect.name == "postgresql"
    found = []
    with store.engine.connect() as conn:
        for statement, parameters in statements:
            if postgres:
                plan = [row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
                found += [line for line in plan if "Seq Scan" in line]
            else:
                plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
                found += [line for line in plan if line.startswith("SCAN") and "CONSTANT ROW" not in line]
    return found


def test_per_turn_questions_are_indexed_queries(store_url):
    store = Store.open(store_url)
    fill(store)
    statements: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    assert store.active_ticket("c3") == 4 and store.active_ticket("c2") is None  # open, resolved
    assert store.held_by("c1") == "ana" and store.held_by("c0") is None  # assigned, open
    assert store.ticket_status(2) == "assigned" and store.ticket(3)["status"] == "resolved"
    assert store.count_recent("c5", "user", 3650 * 86400) == 2
    assert store.conversation_tickets("c4")[0]["status"] == "assigned"
    assert len(store.messages("c7")) == 4
    store.add_feedback("c7", 30, 1)
    event.remove(store.engine, "before_cursor_execute", record)
    assert len(statements) >= 8
    assert full_scans(store, statements) == []
    assert any("count(" in statement.lower() for statement, _ in statements)


def test_the_tables_module_and_the_migrations_agree(store_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    store = Store.open(store_url)
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        assert compare_metadata(context, SQLModel.metadata) == []  # tables, columns and indexes


def test_export_reads_are_indexed_queries(store_url):
    store = Store.open(store_url)
    fill(store)
    ratings = [{"message_id": 4 * n + 2, "rating": 1, "created_at": datetime(2026, 1, 1, tzinfo=UTC)}
               for n in range(CONVERSATIONS)]
    with store.engine.begin() as conn:
        conn.execute(Feedback.__table__.insert(), ratings)
        conn.execute(text("ANALYZE"))
    store.add_feedback("c7", 30, -1)
    statements: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    started = store.conversations_started(start + timedelta(minutes=10), start + timedelta(minutes=12), ["web"])
    assert [c.id for c in started] == ["c10", "c11"]
    assert store.ratings([29, 30, 31, 32]) == {30: -1}  # the later rating stands
    event.remove(store.engine, "before_cursor_execute", record)
    assert len(statements) == 2 and full_scans(store, statements) == []


def test_ticket_changes_of_a_conversation_after_a_cursor(store_url):
    store = Store.open(store_url)
    mine = store.ensure_conversation("mine", "web")
    other = store.ensure_conversation("other", "web")
    ticket, _ = store.open_ticket(mine, "human_button")
    other_ticket, _ = store.open_ticket(other, "human_button")
    store.set_ticket_status(ticket, "assigned", "ana")
    store.set_ticket_status(other_ticket, "assigned", "bo")
    changes = store.ticket_changes(mine)
    assert [(c.status, c.agent) for c in changes] == [("open", None), ("assigned", "ana")]
    store.set_ticket_status(ticket, "resolved", "ana")
    later = store.ticket_changes(mine, changes[-1].id)
    assert [(c.ticket_id, c.status) for c in later] == [(ticket, "resolved")]
    messages = store.messages_started(channels=("web",))
    assert messages == []  # no messages yet: tickets alone are not messages
