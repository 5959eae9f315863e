"""CSV FAQs: one document per row, with a header row naming the question and answer columns.

Document id: the `id` column if present, else `<id base>:<row>` where the id base is the file's
folder-relative path without extension and rows count from 1 (the first row after the header).
Title: the question; text: question and answer. A `url` column becomes the source, like the JSONL
`url`; every other column is metadata (`product`, `language`, ...), which search filters can use.
A row with more non-empty cells than the header has columns (a comma inside an unquoted answer)
makes the file unreadable, naming the rows: loading it would silently cut those answers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.documents import Document, KnowledgeError
from knowledge.formats import UnreadableFile, read_text_file

QUESTION_COLUMNS = ("question", "q", "title")
ANSWER_COLUMNS = ("answer", "a", "text", "body")
_DELIMITERS = (",", ";", "\t")


@dataclass
class FaqFile:
    """The documents of one CSV FAQ and the rows left out, as (row number, reason)."""

    documents: list[Document] = field(default_factory=list)
    skipped_rows: list[tuple[int, str]] = field(default_factory=list)


def read_csv_faq(
    path: Path, id_base: str, *, question_column: str | None = None, answer_column: str | None = None
) -> FaqFile:
    """Documents from the rows of a CSV FAQ; `question_column`/`answer_column` override the guess."""
    raw = read_text_file(path, "utf-8-sig", hint="; save it as CSV UTF-8")
    delimiter = _delimiter(raw)
    reader = csv.reader(io.StringIO(raw, newline=""), delimiter=delimiter)
    try:
        rows = [row for row in reader if row]  # blank lines are not rows
    except csv.Error as err:
        raise UnreadableFile(f"not a valid CSV file (line {reader.line_num}: {err})") from err
    if not rows:
        raise UnreadableFile("empty file")
    columns = [name.strip() for name in rows[0]]
    q, a = _qa_columns(columns, question_column, answer_column)
    if len(rows) == 1:
        raise UnreadableFile("no rows after the header")
    _refuse_extra_cells(rows, delimiter)
    index = _column_index(columns)
    id_col, url_col = index.get("id"), index.get("url")
    meta_cols = [i for i, name in enumerate(columns) if name and i not in (q, a, id_col, url_col)]

    faq = FaqFile()
    seen: dict[str, int] = {}
    for row_no, row in enumerate(rows[1:], start=1):
        cells = [cell.strip() for cell in row] + [""] * (len(columns) - len(row))
        if not any(cells):
            continue
        question, answer = cells[q], cells[a]
        if not answer or not question:
            faq.skipped_rows.append((row_no, f"empty {'answer' if not answer else 'question'}"))
            continue
        doc_id = (cells[id_col] if id_col is not None else "") or f"{id_base}:{row_no}"
        if doc_id in seen:
            raise KnowledgeError(f"{path}: duplicate document id {doc_id!r} on rows {seen[doc_id]} and {row_no}")
        seen[doc_id] = row_no
        faq.documents.append(
            Document(
                id=doc_id,
                title=question,
                text=f"{question}\n\n{answer}",
                source=(cells[url_col] if url_col is not None else "") or f"{path.as_posix()}:{row_no}",
                metadata={columns[i]: cells[i] for i in meta_cols if cells[i]},
            )
        )
    return faq


def _refuse_extra_cells(rows: list[list[str]], delimiter: str) -> None:
    """Rows with non-empty cells beyond the header's columns were split at an unquoted delimiter."""
    width = len(rows[0])
    extra = [row_no for row_no, row in enumerate(rows[1:], start=1) if any(cell.strip() for cell in row[width:])]
    if extra:
        shown = ", ".join(map(str, extra[:20])) + (", ..." if len(extra) > 20 else "")
        raise UnreadableFile(
            f"row{'s' if len(extra) > 1 else ''} {shown} {'have' if len(extra) > 1 else 'has'} more cells than the "
            f"header's {width} columns: a cell holding {delimiter!r} must be quoted (\"like{delimiter} this\")")


def _qa_columns(columns: list[str], question: str | None, answer: str | None) -> tuple[int, int]:
    """Positions of the question and answer columns: the named ones, else the first common name found."""
    index = _column_index(columns)
    found = ", ".join(repr(name) for name in columns)
    for named in (question, answer):
        if named and named.strip().lower() not in index:
            raise UnreadableFile(f"no column {named!r} (columns found: {found})")
    q = index[question.strip().lower()] if question else next((index[n] for n in QUESTION_COLUMNS if n in index), None)
    a = (
        index[answer.strip().lower()]
        if answer
        else next((index[n] for n in ANSWER_COLUMNS if n in index and index[n] != q), None)
    )
    if q is None or a is None:
        raise UnreadableFile(
            f"no question/answer columns (columns found: {found}); expected a question column "
            f"({', '.join(QUESTION_COLUMNS)}) and an answer column ({', '.join(ANSWER_COLUMNS)}), "
            "or name them with csv_question_column / csv_answer_column"
        )
    if q == a:
        raise UnreadableFile(f"the question and answer columns are the same ({columns[q]!r})")
    return q, a


def _column_index(columns: list[str]) -> dict[str, int]:
    """Lower-cased column name -> position; the first of two same-named columns wins."""
    return {name.lower(): i for i, name in reversed(list(enumerate(columns))) if name}


def _delimiter(raw: str) -> str:
    """`,` unless the header line uses `;` (spreadsheets in many locales) or tabs instead."""
    header = raw.split("\n", 1)[0]
    return max(_DELIMITERS, key=header.count) if any(d in header for d in _DELIMITERS) else ","
