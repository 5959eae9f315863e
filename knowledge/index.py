"""The persisted knowledge index: chunks, a FAISS dense index and a BM25 keyword index.

Layout of an index folder: `card.json` (embedder, dimension, chunking, per-document hashes),
`chunks.jsonl`, `dense.faiss`, `bm25/`. Both indexes are built once and loaded, never rebuilt per
query.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.artifacts import CARD, atomic_directory, new_card, read_card, write_card
from knowledge.chunking import ChunkingConfig, chunk_documents
from knowledge.documents import Chunk, Document, KnowledgeError
from knowledge.embedder import Embedder

log = logging.getLogger(__name__)

CHUNKS_FILE = "chunks.jsonl"
DENSE_FILE = "dense.faiss"
KEYWORD_DIR = "bm25"
INDEX_FILES = (CARD, CHUNKS_FILE, DENSE_FILE, KEYWORD_DIR)


def keyword_tokens(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased words without English stop words: the BM25 vocabulary for chunks and queries."""
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


class KnowledgeIndex:
    """Chunks with their dense vectors (FAISS, inner product on normalised vectors) and BM25."""

    def __init__(self, chunks: list[Chunk], dense: Any, keyword: Any, card: dict[str, Any]) -> None:
        self.chunks = chunks
        self.dense = dense
        self.keyword = keyword
        self.card = card

    @property
    def embedder_name(self) -> str:
        return self.card["config"]["embedder"]

    @property
    def dimension(self) -> int:
        return int(self.card["config"]["dimension"])

    @property
    def document_count(self) -> int:
        return len(self.card.get("documents", {}))

    @classmethod
    def build(
        cls,
        documents: Sequence[Document],
        embedder: Embedder,
        chunking: ChunkingConfig | None = None,
        name: str = "index",
        sources: Sequence[str] = (),
    ) -> KnowledgeIndex:
        """Chunk, embed and index `documents` (embedding shows a progress bar)."""
        import faiss

        if not documents:
            raise KnowledgeError("no documents to index: give at least one readable .md, .txt or .jsonl file")
        chunking = chunking or ChunkingConfig()
        chunks = chunk_documents(documents, embedder.count_tokens, chunking)
        log.info("embedding %d chunks of %d documents with %s", len(chunks), len(documents), embedder.name)
        vectors = embedder.encode([c.embedding_text for c in chunks], show_progress=len(chunks) > 256)
        dense = faiss.IndexIDMap2(faiss.IndexFlatIP(embedder.dimension))
        dense.add_with_ids(vectors, np.arange(len(chunks), dtype=np.int64))
        keyword = _build_keyword(chunks)
        card = new_card(
            name,
            "index",
            base={"path": embedder.name, "sha256": None},
            data=[{"path": str(s), "sha256": None, "rows": None} for s in sources],
            config={
                "embedder": embedder.name,
                "dimension": embedder.dimension,
                "chunking": chunking.as_dict(),
                "index_type": "flat",
                "roots": [str(s) for s in sources],
            },
            metrics={"documents": len(documents), "chunks": len(chunks)},
            documents={doc.id: doc.content_hash for doc in documents},
        )
        return cls(chunks, dense, keyword, card)

    def save(self, path: Path) -> None:
        """Write all files to a temporary folder, then swap it into place."""
        import faiss

        with atomic_directory(Path(path)) as tmp:
            with open(tmp / CHUNKS_FILE, "w", encoding="utf-8") as handle:
                for chunk in self.chunks:
                    handle.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
            faiss.write_index(self.dense, str(tmp / DENSE_FILE))
            self.keyword.save(str(tmp / KEYWORD_DIR), show_progress=False)
            write_card(tmp, self.card)
        log.info("saved index with %d chunks to %s", len(self.chunks), path)

    @classmethod
    def load(cls, path: Path) -> KnowledgeIndex:
        """Load an index folder; a missing or damaged one is an error that says how to rebuild it."""
        import bm25s
        import faiss

        path = Path(path)
        fix = f"rebuild it with `assistant kb build PATH... --index {path}`"
        if not path.is_dir():
            raise KnowledgeError(f"no knowledge index at {path}: {fix}")
        missing = [name for name in INDEX_FILES if not (path / name).exists()]
        if missing:
            raise KnowledgeError(f"knowledge index at {path} is incomplete (missing {', '.join(missing)}): {fix}")
        try:
            card = read_card(path)
            with open(path / CHUNKS_FILE, encoding="utf-8") as handle:
                chunks = [Chunk(**json.loads(line)) for line in handle if line.strip()]
            dense = faiss.read_index(str(path / DENSE_FILE))
            keyword = bm25s.BM25.load(str(path / KEYWORD_DIR), show_progress=False)
        except Exception as err:  # any damaged file: faiss, json, numpy and bm25s raise their own types
            raise KnowledgeError(f"knowledge index at {path} is corrupt ({type(err).__name__}: {err}): {fix}") from err
        if dense.ntotal != len(chunks):
            raise KnowledgeError(
                f"knowledge index at {path} is corrupt ({dense.ntotal} vectors for {len(chunks)} chunks): {fix}"
            )
        return cls(chunks, dense, keyword, card)

    def dense_search(self, vectors: np.ndarray, n: int) -> list[list[tuple[int, float]]]:
        """For each query vector, (chunk position, cosine similarity), best first."""
        n = min(n, len(self.chunks))
        scores, ids = self.dense.search(np.asarray(vectors, dtype=np.float32), n)
        return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
                for row_ids, row_scores in zip(ids, scores, strict=True)]

    def keyword_search(self, text: str, n: int) -> list[tuple[int, float]]:
        """(chunk position, BM25 score) of chunks sharing words with `text`, best first."""
        tokens = keyword_tokens([text])
        if not tokens[0]:
            return []
        n = min(n, len(self.chunks))
        ids, scores = self.keyword.retrieve(tokens, k=n, show_progress=False, n_threads=1)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if s > 0]


def _build_keyword(chunks: list[Chunk]) -> Any:
    import bm25s

    keyword = bm25s.BM25()
    keyword.index(keyword_tokens([c.embedding_text for c in chunks]), show_progress=False)
    return keyword
