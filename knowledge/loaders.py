"""Read knowledge documents from folders of files and from JSONL (contracts in ARCHITECTURE.md).

Formats: markdown (optional YAML front matter) and plain text, HTML (main text only), PDF (text
per page) and CSV FAQs (one document per row); readers for the last three are in
`knowledge.formats`. Document ids: the JSONL `id`; for a file in a folder, its POSIX path relative
to that folder without extension (`billing/refunds`); for a CSV FAQ row, its `id` column, else
`<that path>:<row>`. A file that holds documents but cannot be loaded (not UTF-8, a bad JSONL line,
a CSV row with more cells than its header) is reported as failed with the reason, and none of its
documents are loaded; files that are not documents are reported as skipped. The rest of the batch
goes on; whether a failure stops an index update is the caller's decision (`knowledge.ingest`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from knowledge.documents import Document, KnowledgeError
from knowledge.formats import FileText, UnreadableFile, read_text_file
from knowledge.formats.csv_faq import read_csv_faq
from knowledge.formats.html import read_html
from knowledge.formats.pdf import read_pdf

log = logging.getLogger(__name__)

FILE_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".csv")
JSONL_SUFFIXES = (".jsonl",)
CSV_SUFFIXES = (".csv",)


@dataclass
class LoadReport:
    """What a load produced, the files it could not load and what it left out, with reasons."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Files that are not documents and CSV rows left out: (path, reason)."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """Files that hold documents but could not be loaded; none of their documents are loaded."""
    origins: dict[str, str] = field(default_factory=dict)
    """The file each document was loaded from, by document id."""

    def add(self, path: Path | str, documents: Iterable[Document]) -> None:
        """Record documents loaded from one file."""
        for doc in documents:
            self.documents.append(doc)
            self.origins[doc.id] = str(path)

    def skip(self, path: Path | str, reason: str) -> None:
        """Record a file (or a part of one) that was left out on purpose, with the reason."""
        log.warning("skipped %s: %s", path, reason)
        self.skipped.append((str(path), reason))

    def fail(self, path: Path | str, reason: str) -> None:
        """Record a file whose documents could not be loaded, with the reason."""
        log.warning("could not load %s: %s", path, reason)
        self.failed.append((str(path), reason))


@dataclass(frozen=True)
class _CsvColumns:
    question: str | None = None
    answer: str | None = None


def load_documents(
    paths: Iterable[str | Path], *, csv_question_column: str | None = None, csv_answer_column: str | None = None
) -> LoadReport:
    """Load every supported document under `paths` (folders, files or JSONL); ids must be unique.

    `csv_question_column` / `csv_answer_column` name the columns of CSV FAQs (any case) when they
    are not among the common names (question, q, title / answer, a, text, body).
    """
    csv_columns = _CsvColumns(csv_question_column, csv_answer_column)
    report = LoadReport()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise KnowledgeError(
                f"{path} does not exist: give a folder of documents ({', '.join(FILE_SUFFIXES)}) or a .jsonl file"
            )
        if path.is_dir():
            _load_folder(path, report, csv_columns)
        elif path.suffix.lower() in JSONL_SUFFIXES:
            _load_jsonl(path, report)
        else:
            _load_file(path, path.parent, report, csv_columns)
    _check_unique_ids(report.documents)
    return report


def _load_folder(root: Path, report: LoadReport, csv_columns: _CsvColumns) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.suffix.lower() in JSONL_SUFFIXES:
            _load_jsonl(path, report)
        else:
            _load_file(path, root, report, csv_columns)


def _load_jsonl(path: Path, report: LoadReport) -> None:
    """All documents of a JSONL file, or none when a line is bad (never the lines before it)."""
    try:
        documents = list(read_jsonl_documents(path))
    except KnowledgeError as err:
        report.fail(path, _reason(err, path))
        return
    report.add(path, documents)


def _load_file(path: Path, root: Path, report: LoadReport, csv_columns: _CsvColumns) -> None:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        supported = ", ".join((*FILE_SUFFIXES, *JSONL_SUFFIXES))
        report.skip(path, f"unsupported file type {suffix or '(none)'}; supported: {supported}")
        return
    doc_id = path.relative_to(root).with_suffix("").as_posix()
    try:
        if suffix in CSV_SUFFIXES:
            faq = read_csv_faq(path, doc_id, question_column=csv_columns.question, answer_column=csv_columns.answer)
            for row, reason in faq.skipped_rows:
                report.skip(path, f"row {row} skipped: {reason}")
            report.add(path, faq.documents)
            return
        content = _READERS[suffix](path)
    except (UnreadableFile, KnowledgeError) as err:
        report.fail(path, _reason(err, path))
        return
    except OSError as err:
        report.fail(path, f"cannot read the file ({err.strerror or err})")
        return
    report.add(path, [
        Document(
            id=doc_id,
            title=content.title or path.stem.replace("-", " ").capitalize(),
            text=content.text,
            source=content.source or path.as_posix(),
            metadata=content.metadata,
        )
    ])


def _reason(err: Exception, path: Path) -> str:
    """The error's message without the path it starts with (the report names the file already)."""
    message = str(err)
    for prefix in (f"{path}, ", f"{path}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _read_text(path: Path) -> FileText:
    """A markdown or plain-text file; markdown may start with YAML front matter (title, url, metadata)."""
    raw = read_text_file(path)
    meta, body = split_front_matter(raw) if path.suffix.lower() != ".txt" else ({}, raw)
    if not body.strip():
        raise UnreadableFile("empty file")
    title = str(meta.pop("title", "") or _first_heading(body))
    source = str(meta.pop("url", "") or "")
    return FileText(text=body.strip(), title=title, source=source, metadata=meta)


_READERS: dict[str, Callable[[Path], FileText]] = {
    ".md": _read_text,
    ".markdown": _read_text,
    ".txt": _read_text,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
}


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
        raise KnowledgeError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
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
