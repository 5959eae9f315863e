"""Self-describing artifact folders: a `card.json` beside the files, written atomically.

Every artifact (model, adapter, classifier, index) is written to a temporary sibling folder that
is renamed into place, so an interrupted run leaves the previous artifact usable. The writer holds
a lock on its temporary folder; the next write removes the folders whose writer is gone (killed
runs leave them behind, tens of MB each).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from knowledge.documents import KnowledgeError

CARD = "card.json"
log = logging.getLogger(__name__)


def package_version() -> str:
    """The installed version of support-assistant."""
    try:
        return metadata.version("support-assistant")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while data := handle.read(block):
            digest.update(data)
    return digest.hexdigest()


def folder_checksums(directory: Path) -> dict[str, str]:
    """SHA-256 of every file in an artifact folder but its card, by POSIX path relative to it."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.relative_to(directory).as_posix() != CARD)
    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in files}


def new_card(name: str, kind: str, **fields: Any) -> dict[str, Any]:
    """A card with the common keys of ARCHITECTURE.md; `fields` fill or extend them."""
    card: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "package_version": package_version(),
        "base": None,
        "data": [],
        "config": {},
        "metrics": {},
    }
    card.update(fields)
    return card


def write_card(directory: Path, card: dict[str, Any]) -> None:
    """Write `card.json` into an artifact folder."""
    (directory / CARD).write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_card(directory: Path) -> dict[str, Any]:
    """Read an artifact folder's `card.json`."""
    return json.loads((directory / CARD).read_text(encoding="utf-8"))


def recover(target: Path) -> None:
    """Finish a swap that was interrupted between its two renames: the previous folder comes back."""
    target = Path(target)
    if target.exists():
        return
    leftovers = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if leftovers:
        leftovers[-1].rename(target)


@contextmanager
def writing_lock(target: Path) -> Iterator[None]:
    """One writer at a time per artifact (a second `kb add` waits instead of losing an update)."""
    import fcntl

    target = Path(target)
    with ExitStack() as stack:
        with writable(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            handle = stack.enter_context(open(target.parent / f".{target.name}.lock", "w"))
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `target` in one rename."""
    target = Path(target)
    with writable(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(target)
        tmp, held = _new_locked_folder(target)
    try:
        try:
            with writable(target):
                yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        with writable(target):
            if target.exists():
                target.rename(old)
            tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        os.close(held)


@contextmanager
def writable(target: Path) -> Iterator[None]:
    """Turn a failed write into one line that names the cause and the fix (the previous version stays)."""
    try:
        yield
    except OSError as err:
        raise KnowledgeError(
            f"cannot write {target}: {_write_problem(target, err)}; the previous version (if any) is unchanged. "
            "Make that folder writable or write elsewhere (ASSISTANT_DATA_DIR for the data dir, --index PATH "
            "for an index)") from err


def _write_problem(target: Path, err: OSError) -> str:
    """What stopped a write, in words: a file where a folder should be, a read-only disk, permissions."""
    if err.errno in (errno.ENOTDIR, errno.EEXIST):
        blocking = next((p for p in (target, *target.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            return f"{blocking} is a file, not a folder"
    where = Path(err.filename).parent if err.filename else target.parent  # the folder that refused it
    if err.errno == errno.EROFS:
        return f"{where} is on a read-only file system"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to write in {where}"
    if err.errno == errno.ENOSPC:
        return "no space left on the device"
    return f"{err.strerror or err} ({where})"


def _new_locked_folder(target: Path) -> tuple[Path, int]:
    """A new temporary folder beside `target` and a descriptor holding its lock until closed."""
    import fcntl

    while True:
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        held = os.open(tmp, os.O_RDONLY)
        fcntl.flock(held, fcntl.LOCK_EX)  # released when this process ends, however it ends
        try:  # another writer's clean-up may have taken it between mkdir and the lock
            if os.stat(tmp).st_ino == os.fstat(held).st_ino:
                return tmp, held
        except FileNotFoundError:
            pass
        os.close(held)


def remove_leftovers(target: Path) -> None:
    """Delete temporary folders of writes to `target` whose writer died, and stale previous versions."""
    import fcntl

    for folder in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            handle = os.open(folder, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: its writer is alive
            log.info("removing %s, left by an interrupted write", folder)
            shutil.rmtree(folder, ignore_errors=True)
        except BlockingIOError:
            pass
        finally:
            os.close(handle)
    if target.exists():  # otherwise a previous version is what `recover` brings back
        for folder in target.parent.glob(f".{target.name}.old-*"):
            log.info("removing %s, left by an interrupted write", folder)
            shutil.rmtree(folder, ignore_errors=True)
