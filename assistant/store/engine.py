"""Engines for the store: SQLite with real write transactions, PostgreSQL, and inserts that tolerate a race."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from sqlalchemy import Insert, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from assistant.errors import StoreUnavailable

WRITE = "store_write"  # execution option of the connections that write
MIGRATION_LOCK_TIMEOUT_S = 300


def make_engine(url: str) -> Engine:
    """An engine for `url`; on SQLite, a transaction opened with the WRITE option begins IMMEDIATE."""
    if not url.startswith("sqlite"):
        connect_args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args)
    path = sqlite_path(url)
    if path:
        prepare_sqlite_file(path)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _: Any) -> None:
        # the driver must not open transactions on its own: `_sqlite_begin` below opens them
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Connection) -> None:
        # A writer takes the write lock when it begins, so writers queue (busy timeout) one after
        # another; a reader that later writes would instead fail at once when another wrote first.
        immediate = connection.get_execution_options().get(WRITE)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


WHERE_TO_WRITE = ("Set ASSISTANT_DATA_DIR to a folder this process can write, or ASSISTANT_DATABASE_URL "
                  "to another store.")


def prepare_sqlite_file(path: Path) -> None:
    """Create the database's folder and file, or say in one line why they cannot be created and what to do."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        existing = next((folder for folder in path.parent.parents if folder.exists()), Path("/"))
        why = (f"{existing} is a file, not a folder" if not existing.is_dir()
               else f"{existing} does not let this process create folders ({err.strerror})")
        raise StoreUnavailable(f"cannot create the folder {path.parent} for the conversation store: {why}. "
                               f"{WHERE_TO_WRITE}") from err
    if path.is_dir():
        raise StoreUnavailable(f"the conversation store {path} is a folder, not a database file. {WHERE_TO_WRITE}")
    try:
        with open(path, "ab"):  # SQLite treats an empty file as an empty database
            pass
    except OSError as err:
        raise StoreUnavailable(f"{path.parent} does not let this process create or write {path.name}, the "
                               f"conversation store ({err.strerror}). {WHERE_TO_WRITE}") from err


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for an in-memory database)."""
    path = url.split("///", 1)[-1] if "///" in url else ""
    path = path.split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def insert_ignoring(dialect: str, table: Table, **values: Any) -> Insert:
    """INSERT … ON CONFLICT DO NOTHING: a row someone else inserted first is left as it is."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).values(**values).on_conflict_do_nothing()


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold a lock file beside a SQLite database while its schema is upgraded (other processes wait)."""
    path = sqlite_path(url) if url.startswith("sqlite") else None
    if path is None:  # PostgreSQL: `lock_schema` inside the migration's transaction
        yield
        return
    lock = FileLock(f"{path}.migrate.lock")
    try:
        lock.acquire(timeout=MIGRATION_LOCK_TIMEOUT_S)
    except Timeout as err:
        raise StoreUnavailable(f"another process has been upgrading {path} for {MIGRATION_LOCK_TIMEOUT_S} s; "
                               f"if none is running, remove {lock.lock_file}") from err
    try:
        yield
    finally:
        lock.release()


def lock_schema(connection: Connection) -> None:
    """On PostgreSQL, wait for an advisory lock on the store's schema until the transaction ends."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('support-assistant schema ' "
                                "|| coalesce(current_schema(), '')))"))
