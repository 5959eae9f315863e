"""PDF files: the text of each page (pypdf) under a `## Page N` heading, so chunks keep their page."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from knowledge.formats import FileText, UnreadableFile

log = logging.getLogger(__name__)

# lines the chunker would read as markdown structure (a heading, a code fence); escaped so that
# every section of a PDF stays "Page N"
_MARKDOWN_START = re.compile(r"^(\s*)(#{1,6}(?=\s|$)|```|~~~)", re.MULTILINE)
_TITLE_CHARS = 150


def read_pdf(path: Path) -> FileText:
    """`## Page 1\\n<text>\\n\\n## Page 2\\n...` (empty pages left out); title from metadata or first line."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFile("encrypted PDF (needs a password)")
        pages = list(reader.pages)
        title = _metadata_title(reader)
    except UnreadableFile:
        raise
    except DependencyError as err:  # AES encryption needs the optional `cryptography` package
        raise UnreadableFile(f"encrypted PDF that cannot be opened ({err})") from err
    except Exception as err:  # pypdf raises many kinds of error on damaged files
        raise UnreadableFile(f"not a readable PDF ({type(err).__name__}: {err})") from err

    sections: list[str] = []
    failures: list[str] = []
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as err:  # one damaged page: keep the others
            log.warning("%s, page %d: cannot extract text (%s)", path, number, err)
            failures.append(f"page {number}: {type(err).__name__}: {err}")
            continue
        text = _MARKDOWN_START.sub(r"\1\\\2", text.replace("\x00", "").strip())
        if text:
            sections.append(f"## Page {number}\n{text}")
    if not sections:
        if failures:
            raise UnreadableFile(f"cannot extract text ({failures[0]})")
        raise UnreadableFile("no extractable text (scanned PDF?)")
    body = "\n\n".join(sections)
    return FileText(text=body, title=title or _first_line(body))


def _metadata_title(reader) -> str:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # a damaged info dictionary only costs the title
        return ""
    return " ".join(str(title or "").split())


def _first_line(body: str) -> str:
    for line in body.splitlines():
        line = line.strip().lstrip("\\")
        if line and not line.startswith("## Page "):
            return line if len(line) <= _TITLE_CHARS else line[:_TITLE_CHARS].rsplit(" ", 1)[0] + "…"
    return ""
