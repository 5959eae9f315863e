"""Split documents into chunks sized in embedder tokens (langchain-text-splitters).

Markdown is split along its headings first, so each chunk keeps its heading path as context;
then long sections are split with overlap, measuring length with the embedder's own tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from knowledge.documents import Chunk, Document, content_hash

_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]


@dataclass(frozen=True)
class ChunkingConfig:
    """How documents are cut: sizes are in embedder tokens."""

    chunk_tokens: int = 200
    """Largest chunk, in tokens of the embedder (MiniLM reads at most 256)."""
    overlap_tokens: int = 40
    """Tokens shared by neighbouring chunks of one long section."""

    def as_dict(self) -> dict[str, int]:
        """The settings as recorded in an index card."""
        return {"chunk_tokens": self.chunk_tokens, "overlap_tokens": self.overlap_tokens}


def chunk_documents(
    documents: Iterable[Document], count_tokens: Callable[[str], int], config: ChunkingConfig
) -> list[Chunk]:
    """Chunks of every document, ids `<doc id>#<n>`, in document order."""
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=config.chunk_tokens,
        chunk_overlap=config.overlap_tokens,
        length_function=count_tokens,
        separators=["\n\n", "\n", ". ", " ", ""],
    )
    headers = MarkdownHeaderTextSplitter(_HEADERS, strip_headers=True)
    chunks: list[Chunk] = []
    for doc in documents:
        sections = [(section_title(part.metadata), part.page_content) for part in headers.split_text(doc.text)]
        position = 0
        for section, text in sections or [("", doc.text)]:
            for piece in splitter.split_text(text):
                if not piece.strip():
                    continue
                chunks.append(
                    Chunk(
                        id=f"{doc.id}#{position}",
                        doc_id=doc.id,
                        title=doc.title,
                        text=piece.strip(),
                        source=doc.source,
                        position=position,
                        section=section,
                        content_hash=content_hash(piece),
                        metadata=doc.metadata,
                    )
                )
                position += 1
    return chunks


def section_title(metadata: dict[str, str]) -> str:
    """The heading path of a markdown section, deepest last (`Refunds > Timing`), without the h1."""
    return " > ".join(metadata[key] for _, key in _HEADERS[1:] if metadata.get(key))
