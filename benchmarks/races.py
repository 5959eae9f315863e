"""Store writes that race, counted on SQLite and on PostgreSQL, against one store per backend.

For each race the store's own method ("ours") runs beside a baseline in the same run: the
check-then-write the store did before (read with one query, write in a later transaction, no lock).
Targets: 16 simultaneous handoffs open exactly 1 ticket; 24 simultaneous messages under a limit of
12 a minute are accepted exactly 12 times, each accepted message stored once; 16 simultaneous first
messages of a new conversation raise nothing; of 8 agents taking over one ticket exactly 1 wins;
4 processes starting on a fresh store all start. PostgreSQL is `ASSISTANT_TEST_DATABASE_URL` (or
the local default), in a schema of its own that is dropped afterwards; it is left out when it does
not answer. `--json` prints one object on the last line of stdout.

    python benchmarks/races.py [--trials 3] [--seconds 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlmodel import Session

from assistant.errors import RateLimited
from assistant.store import Conversation, Escalation, Message, Store, TicketEvent

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "check-then-write: one query reads, a later transaction writes, no lock (the store before #14)"
TARGETS = {"tickets_opened": 1, "messages_accepted": 12, "messages_stored_once": True, "first_message_errors": 0,
           "takeover_winners": 1, "processes_started": 4}
RATE_LIMIT = 12


def race(n: int, action: Callable[[int], object]) -> list[object]:
    """`action(i)` in n threads released together; each result or exception."""
    gate = threading.Barrier(n)
    outcome: list[object] = [None] * n

    def worker(i: int) -> None:
        gate.wait(timeout=60)
        try:
            outcome[i] = action(i)
        except Exception as err:  # counted, not raised
            outcome[i] = err

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcome


def plain_write(store: Store, *rows: object) -> None:
    """Rows written the way the store did before: a plain transaction of their own."""
    with Session(store.engine, expire_on_commit=False) as session:
        session.add_all(rows)
        session.commit()


def tickets_opened(store: Store, ours: bool) -> int:
    conversation = store.ensure_conversation(None, "web")

    def baseline(_: int) -> None:
        if store.active_ticket(conversation) is None:
            ticket = Escalation(conversation_id=conversation, reason="asked for a human")
            plain_write(store, ticket)
            plain_write(store, TicketEvent(ticket_id=ticket.id, status="open"))

    race(16, (lambda i: store.open_ticket(conversation, "asked for a human")) if ours else baseline)
    return len(store.escalations(conversation))


def messages_accepted(store: Store, ours: bool) -> tuple[int, bool]:
    conversation = store.ensure_conversation(None, "web")

    def baseline(i: int) -> Message:
        if store.count_recent(conversation, "user", 60) >= RATE_LIMIT:
            raise RateLimited("over the limit")
        message = Message(conversation_id=conversation, role="user", content=f"message {i}", channel="web")
        plain_write(store, message)
        return message

    def atomic(i: int) -> Message:
        return store.add_customer_message(conversation, f"message {i}", "web", max_per_minute=RATE_LIMIT)

    accepted = [r for r in race(24, atomic if ours else baseline) if isinstance(r, Message)]
    stored = store.messages(conversation)
    stored_once = sorted(m.content for m in stored) == sorted(m.content for m in accepted) == sorted(
        {m.content for m in stored})
    return len(accepted), stored_once


def first_message_errors(store: Store, ours: bool) -> int:
    conversation = uuid.uuid4().hex

    def baseline(_: int) -> str:
        if store.conversation(conversation) is None:
            plain_write(store, Conversation(id=conversation, channel="web"))
        return conversation

    results = race(16, (lambda i: store.ensure_conversation(conversation, "web")) if ours else baseline)
    return sum(isinstance(r, Exception) for r in results)


def takeover_winners(store: Store, ours: bool) -> int:
    conversation = store.ensure_conversation(None, "web")
    ticket, _ = store.open_ticket(conversation, "asked for a human")

    def baseline(i: int) -> str:
        if store.ticket_status(ticket) not in ("open", "released"):
            raise ValueError("taken")
        plain_write(store, TicketEvent(ticket_id=ticket, status="assigned", agent=f"agent-{i}"))
        return "assigned"

    results = race(8, (lambda i: store.set_ticket_status(ticket, "assigned", f"agent-{i}")) if ours else baseline)
    return sum(r == "assigned" for r in results)


def processes_started(url: str, ours: bool) -> int:
    """4 processes released together on a fresh store; how many got it upgraded without an error."""
    start_at = str(time.time() + 5)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "--start-worker", url, start_at] + ([] if ours else ["--unlocked"])
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(4)]
    return sum(worker.wait(timeout=180) == 0 for worker in workers)


def start_worker(url: str, start_at: float, unlocked: bool) -> None:
    """One starting server: wait for the common start time, then bring the schema up to date."""
    time.sleep(max(0.0, start_at - time.time()))
    store = Store(url)
    if not unlocked:
        store.upgrade()
        return
    from alembic import command
    from alembic.config import Config

    from assistant.store.store import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as connection:  # the upgrade as it was: no lock, a deferred transaction
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def fresh_store_urls(backend: str) -> Iterator[Callable[[], str]]:
    """A maker of fresh, empty store URLs on `backend`; everything made is removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield lambda: f"sqlite:///{folder}/{uuid.uuid4().hex}.db"
        return
    from sqlalchemy import create_engine, text

    base = os.environ.get("ASSISTANT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    engine, schemas = create_engine(base, connect_args={"connect_timeout": 3}), []

    def make() -> str:
        schemas.append(f"races_{uuid.uuid4().hex[:10]}")
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schemas[-1]}"'))
        return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schemas[-1]}"

    try:
        yield make
    finally:
        with engine.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def one_trial(make_url: Callable[[], str], ours: bool) -> dict[str, object]:
    store = Store.open(make_url())
    accepted, stored_once = messages_accepted(store, ours)
    figures = {"tickets_opened": tickets_opened(store, ours), "messages_accepted": accepted,
               "messages_stored_once": stored_once, "first_message_errors": first_message_errors(store, ours),
               "takeover_winners": takeover_winners(store, ours),
               "processes_started": processes_started(make_url(), ours)}
    store.engine.dispose()
    return figures


def backend_available(backend: str) -> bool:
    if backend == "sqlite":
        return True
    try:
        with fresh_store_urls(backend) as make_url:
            make_url()
        return True
    except Exception:  # no server: reported as left out
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="runs of every race per backend and side")
    parser.add_argument("--seconds", type=float, default=300, help="no new trial starts after this many seconds")
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line of stdout")
    parser.add_argument("--start-worker", nargs=2, metavar=("URL", "START_AT"), help=argparse.SUPPRESS)
    parser.add_argument("--unlocked", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.start_worker:
        start_worker(args.start_worker[0], float(args.start_worker[1]), args.unlocked)
        return
    deadline = time.monotonic() + args.seconds
    report: dict[str, object] = {"baseline": BASELINE, "targets": TARGETS}
    for backend in ("sqlite", "postgresql"):
        if not backend_available(backend):
            report[backend] = None
            print(f"{backend}: not reachable, left out", file=sys.stderr)
            continue
        runs: dict[str, list[dict[str, object]]] = {"ours": [], "baseline": []}
        with fresh_store_urls(backend) as make_url:
            for _ in range(args.trials):
                if time.monotonic() > deadline:
                    break
                for side in runs:
                    runs[side].append(one_trial(make_url, ours=side == "ours"))
        met = all(run[key] == target for run in runs["ours"] for key, target in TARGETS.items())
        report[backend] = {**runs, "ours_meets_targets": met and bool(runs["ours"])}
        print_table(backend, runs)
    if args.json:
        print(json.dumps(report))


def print_table(backend: str, runs: dict[str, list[dict[str, object]]]) -> None:
    print(f"\n{backend}: per trial")
    for key, target in TARGETS.items():
        cells = {side: ", ".join(str(run[key]) for run in runs[side]) for side in runs}
        print(f"  {key:<22} ours {cells['ours']:<18} baseline {cells['baseline']:<22} target {target}")


if __name__ == "__main__":
    main()
