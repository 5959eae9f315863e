"""Readers for the document formats beyond markdown and plain text: HTML, PDF and CSV FAQs.

Each reader turns one file into text (a CSV FAQ into one document per row). A file it cannot use
raises `UnreadableFile` with the reason, phrased for the person who can fix it; `knowledge.loaders`
records that reason in its report and goes on with the rest of the batch. The third-party
libraries (trafilatura, pypdf) are imported only when a file of their format is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class UnreadableFile(Exception):
    """A file that cannot be loaded; the message is the reason shown in `LoadReport.skipped`."""


@dataclass(frozen=True)
class FileText:
    """The text of one file with what it says about itself; empty title/source mean "not given"."""

    text: str
    title: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def read_text_file(path: Path, encoding: str = "utf-8", hint: str = "") -> str:
    """A file's text; not UTF-8 or containing NUL bytes is an UnreadableFile saying so (and `hint`)."""
    try:
        raw = path.read_bytes().decode(encoding)
    except UnicodeDecodeError as err:
        raise UnreadableFile(f"not UTF-8 text ({err.reason} at byte {err.start}){hint}") from err
    if "\x00" in raw:
        raise UnreadableFile("looks binary (contains NUL bytes)")
    return raw
