"""Read knowledge documents from folders of files and from JSONL (contracts in ARCHITECTURE.md).

Document ids: the JSONL `id`; for a file in a folder, its POSIX path relative to that folder
without extension (`billing/refunds`). A file that cannot be read is reported with the reason
and the rest of the batch goes on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from knowledge.documents import Document, KnowledgeError

log = logging.getLogger(__name__)

FILE_SUFFIXES = (".md", ".markdown", ".txt")
JSONL_SUFFIXES = (".jsonl",)


@dataclass
class LoadReport:
    """What a load produced and which files it had to skip, with the reason for each."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, path: Path | str, reason: str) -> None:
        log.warning("skipped %s: %s", path, reason)
        self.skipped.append((str(path), reason))


def load_documents(paths: Iterable[str | Path]) -> LoadReport:
    """Load every supported document under `paths` (folders, files or JSONL); ids must be unique."""
    report = LoadReport()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise KnowledgeError(f"{path} does not exist: give a folder of .md/.txt files or a .jsonl file")
        if path.is_dir():
            _load_folder(path, report)
        elif path.suffix.lower() in JSONL_SUFFIXES:
            report.documents.extend(read_jsonl_documents(path))
        else:
            _load_file(path, path.parent, report)
    _check_unique_ids(report.documents)
    return report


def _load_folder(root: Path, report: LoadReport) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.suffix.lower() in JSONL_SUFFIXES:
            report.documents.extend(read_jsonl_documents(path))
        else:
            _load_file(path, root, report)


def _load_file(path: Path, root: Path, report: LoadReport) -> None:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        report.skip(path, f"unsupported file type {suffix or '(none)'}; supported: {', '.join(FILE_SUFFIXES)}")
        return
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        report.skip(path, f"not UTF-8 text ({err.reason} at byte {err.start})")
        return
    if "\x00" in raw:
        report.skip(path, "looks binary (contains NUL bytes)")
        return
    doc_id = path.relative_to(root).with_suffix("").as_posix()
    meta, body = split_front_matter(raw) if suffix != ".txt" else ({}, raw)
    if not body.strip():
        report.skip(path, "empty file")
        return
    title = str(meta.pop("title", "") or _first_heading(body) or path.stem.replace("-", " ").capitalize())
    source = str(meta.pop("url", "") or path.as_posix())
    report.documents.append(Document(id=doc_id, title=title, text=body.strip(), source=source, metadata=meta))


def split_front_matter(text: str) -> tuple[dict, str]:
    """Split an optional YAML front-matter block (`---` ... `---`) from a markdown body."""
    if not text.startswith("---"):
        return {}, text
    end = text.find("\n---", 3)
    if end == -1:
        return {}, text
    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError:
        return {}, text
    if not isinstance(meta, dict):
        return {}, text
    return meta, text[end + 4 :].lstrip("\n")


def _first_heading(body: str) -> str:
    for line in body.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def read_jsonl_documents(path: Path) -> Iterator[Document]:
    """Documents from a JSONL file of `{"id", "title", "text", "url"?, "metadata"?}` records."""
    seen: dict[str, int] = {}
    for line_no, record in iter_jsonl(path):
        missing = [key for key in ("id", "text") if not record.get(key)]
        if missing:
            raise KnowledgeError(f"{path}, line {line_no}: missing {', '.join(missing)}")
        doc_id = str(record["id"])
        if doc_id in seen:
            raise KnowledgeError(f"{path}: duplicate document id {doc_id!r} on lines {seen[doc_id]} and {line_no}")
        seen[doc_id] = line_no
        yield Document(
            id=doc_id,
            title=str(record.get("title") or doc_id),
            text=str(record["text"]),
            source=str(record.get("url") or f"{path.as_posix()}:{line_no}"),
            metadata=dict(record.get("metadata") or {}),
        )


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a bad line is an error naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise KnowledgeError(f"{path} is not UTF-8 text: {err.reason}") from err
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise KnowledgeError(f"{path}, line {line_no}: not valid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise KnowledgeError(f"{path}, line {line_no}: expected a JSON object")
        yield line_no, record


def _check_unique_ids(documents: list[Document]) -> None:
    sources: dict[str, str] = {}
    for doc in documents:
        if doc.id in sources:
            raise KnowledgeError(f"duplicate document id {doc.id!r}: {sources[doc.id]} and {doc.source}")
        sources[doc.id] = doc.source
