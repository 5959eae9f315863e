"""Training records on disk: transcripts (the contract of ARCHITECTURE.md) read line by line, written atomically.

A bad line is reported with its file and line number; `skip_bad=True` logs it and goes on, so one
broken export line never costs a whole training run.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from assistant.errors import AssistantError

log = logging.getLogger(__name__)
T = TypeVar("T")
ROLES = ("system", "user", "assistant")
MAX_REPORTED = 5


class TrainingDataError(AssistantError):
    """Training data that cannot be used as given (bad lines, nothing to learn from, a leak of test questions)."""


@dataclass(frozen=True)
class Transcript:
    """One conversation: `{"id", "messages": [{"role", "content"}], "metadata"?}`."""

    id: str
    messages: tuple[dict[str, str], ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "messages": [dict(m) for m in self.messages]}
        if self.metadata:
            row["metadata"] = self.metadata
        return row


def parse_transcript(row: dict[str, Any]) -> Transcript:
    """A transcript from one JSON object; ValueError says which field is wrong."""
    if not isinstance(row.get("id"), str | int) or str(row.get("id")).strip() == "":
        raise ValueError('needs an "id" (string)')
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError('needs "messages": a non-empty list of {"role", "content"}')
    clean = []
    for n, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"message {n} needs a role among {', '.join(ROLES)}")
        if not isinstance(message.get("content"), str) or not message["content"].strip():
            raise ValueError(f"message {n} ({message['role']}) has no text content")
        clean.append({"role": message["role"], "content": message["content"]})
    if not any(m["role"] == "assistant" for m in clean):
        raise ValueError("has no assistant turn: nothing to learn from")
    metadata = row.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError('"metadata" must be an object')
    return Transcript(str(row["id"]), tuple(clean), metadata)


def _transcript_or_preference(row: dict[str, Any]) -> Transcript | None:
    """A transcript, or None for a preference record of `train export --negatives`."""
    if "rejected" in row and "prompt" in row and "messages" not in row:
        return None
    return parse_transcript(row)


def read_records(path: Path, parse: Callable[[dict[str, Any]], T], *, skip_bad: bool = False) -> list[T]:
    """Parse every non-blank JSONL line of `path`; bad lines raise (naming them) unless `skip_bad`."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"{path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise TrainingDataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    records: list[T] = []
    bad: list[str] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("expected a JSON object")
            records.append(parse(row))
        except (json.JSONDecodeError, ValueError, TypeError) as err:
            reason = f"not valid JSON ({err.msg})" if isinstance(err, json.JSONDecodeError) else str(err)
            bad.append(f"{path}, line {line_no}: {reason}")
    if bad and not skip_bad:
        more = f"; and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
        shown = "; ".join(bad[:MAX_REPORTED]) + more
        raise TrainingDataError(f"{len(bad)} bad line(s): {shown}. Fix them, or pass --skip-bad to leave them out")
    for message in bad:
        log.warning("skipped %s", message)
    return records


def read_transcripts(paths: Sequence[Path], *, skip_bad: bool = False) -> list[Transcript]:
    """Transcripts of every file, in order; ids must be unique across files."""
    out: list[Transcript] = []
    seen: dict[str, Path] = {}
    for path in paths:
        records = read_records(path, _transcript_or_preference, skip_bad=skip_bad)
        preferences = sum(r is None for r in records)
        if preferences:
            log.info("%s: %d preference record(s) (prompt/chosen/rejected) are not used by supervised fine-tuning",
                     path, preferences)
        for transcript in (r for r in records if r is not None):
            if transcript.id in seen:
                message = f"duplicate transcript id {transcript.id!r} in {path} (first in {seen[transcript.id]})"
                if not skip_bad:
                    raise TrainingDataError(message + ": give every conversation its own id, or pass --skip-bad")
                log.warning("skipped %s", message)
                continue
            seen[transcript.id] = Path(path)
            out.append(transcript)
    return out


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSONL through a temporary file renamed into place; returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
