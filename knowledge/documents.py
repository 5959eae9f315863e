"""The records that flow through the knowledge base: documents, chunks and search hits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


class KnowledgeError(ValueError):
    """A problem with knowledge input or an index, phrased for the person who can fix it."""


def content_hash(text: str) -> str:
    """Stable hash of a text, used to tell changed documents and chunks apart."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Document:
    """One knowledge document: an article, a FAQ entry or a JSONL record."""

    id: str
    title: str
    text: str
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Hash of the title and text: what incremental updates compare."""
        return content_hash(f"{self.title}\n{self.text}")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough to embed; keeps its document's id and context."""

    id: str
    doc_id: str
    title: str
    text: str
    source: str = ""
    position: int = 0
    section: str = ""
    content_hash: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def embedding_text(self) -> str:
        """The text that is embedded and keyword-indexed: title and section give context."""
        heading = f"{self.title} — {self.section}" if self.section and self.section != self.title else self.title
        return f"{heading}\n{self.text}" if heading else self.text


@dataclass(frozen=True)
class Hit:
    """One retrieved document: its best chunk, its fused rank score and a calibrated confidence."""

    doc_id: str
    chunk_id: str
    title: str
    text: str
    source: str
    score: float
    confidence: float
    metadata: dict[str, Any] = field(default_factory=dict)
    similarity: float | None = None
    """Cosine similarity of the best chunk to the query (what confidence is calibrated from)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, scores rounded."""
        return {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "title": self.title,
            "text": self.text,
            "source": self.source,
            "score": round(float(self.score), 6),
            "confidence": round(float(self.confidence), 4),
            "similarity": None if self.similarity is None else round(float(self.similarity), 4),
        }
