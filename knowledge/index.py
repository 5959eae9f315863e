"""The persisted knowledge index: chunks, a FAISS dense index and a BM25 keyword index.

Layout of an index folder: `card.json` (embedder, dimension, chunking, per-document content
hashes and source files, a SHA-256 of every other file), `chunks.jsonl` (one chunk per line with
its vector id, in vector-id order), `dense.faiss`, `bm25/`. Loading checks the card and the
checksums, so a damaged file is named instead of answering from the wrong article. Both
indexes are built once and loaded, never rebuilt per query. Updates re-embed only new or changed
documents (by content hash) and delete the chunks of removed ones; the BM25 index is rebuilt
from the stored chunk texts, which needs no embedding.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.artifacts import CARD, atomic_directory, folder_checksums, new_card, read_card, recover, write_card
from knowledge.chunking import ChunkingConfig, chunk_documents
from knowledge.dense import DenseConfig, all_vectors, dense_kind, new_dense_index
from knowledge.documents import Chunk, Document, KnowledgeError
from knowledge.embedder import Embedder

log = logging.getLogger(__name__)

CHUNKS_FILE = "chunks.jsonl"
DENSE_FILE = "dense.faiss"
KEYWORD_DIR = "bm25"
INDEX_FILES = (CARD, CHUNKS_FILE, DENSE_FILE, KEYWORD_DIR)
CARD_CONFIG_KEYS = ("embedder", "dimension", "chunking", "next_vector_id")


def _bm25s() -> Any:
    """The bm25s module, with the DEBUG level it sets on import turned back down."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def keyword_tokens(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased words without English stop words: the BM25 vocabulary for chunks and queries."""
    return _bm25s().tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


@dataclass
class UpdateReport:
    """What an incremental update did, document ids per kind of change."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    chunks_embedded: int = 0
    kept: list[str] = field(default_factory=list)
    """Documents missing from the load because their file failed: their indexed version stays."""

    def summary(self) -> str:
        """One line for the CLI."""
        kept = f", {len(self.kept)} kept from files that could not be loaded" if self.kept else ""
        return (f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
                f"{self.unchanged} unchanged{kept}; {self.chunks_embedded} chunks embedded")


class KnowledgeIndex:
    """Chunks with their dense vectors (inner product on normalised vectors) and a BM25 index."""

    def __init__(self, chunks: list[Chunk], vector_ids: list[int], dense: Any, keyword: Any,
                 card: dict[str, Any]) -> None:
        self.chunks = chunks
        self.vector_ids = vector_ids
        self.dense = dense
        self.keyword = keyword
        self.card = card
        self._position = {vector_id: position for position, vector_id in enumerate(vector_ids)}

    # -- facts -------------------------------------------------------------------------------
    @property
    def embedder_name(self) -> str:
        """Name of the embedder the index was built with."""
        return self.card["config"]["embedder"]

    @property
    def dimension(self) -> int:
        """Dimension of its vectors."""
        return int(self.card["config"]["dimension"])

    @property
    def document_hashes(self) -> dict[str, str]:
        """Content hash of every indexed document, by id."""
        return self.card["documents"]

    @property
    def document_count(self) -> int:
        """Number of indexed documents."""
        return len(self.document_hashes)

    @property
    def origins(self) -> dict[str, str]:
        """The file each document was loaded from, by id (indexes written by earlier versions lack it)."""
        return self.card.setdefault("origins", {})

    def documents_from(self, files: Iterable[str]) -> set[str]:
        """Ids of indexed documents loaded from `files`, and of those whose file is not recorded."""
        files = set(files)
        if not files:
            return set()
        origins = self.origins
        return {doc_id for doc_id in self.document_hashes if origins.get(doc_id, "") in files or doc_id not in origins}

    @property
    def roots(self) -> list[str]:
        """Folders the index was built from (ids of added files are relative to them)."""
        return list(self.card["config"].get("roots", []))

    # -- building and updating -----------------------------------------------------------------
    @classmethod
    def build(cls, documents: Sequence[Document], embedder: Embedder, chunking: ChunkingConfig | None = None,
              name: str = "index", sources: Sequence[str] = (), dense: DenseConfig | None = None) -> KnowledgeIndex:
        """Chunk, embed and index `documents` (embedding shows a progress bar on large batches)."""
        if not documents:
            raise KnowledgeError("no documents to index: give at least one readable document")
        chunking = chunking or ChunkingConfig()
        card = new_card(
            name, "index",
            base={"path": embedder.name, "sha256": None},
            data=[{"path": str(s), "sha256": None, "rows": None} for s in sources],
            config={"embedder": embedder.name, "dimension": embedder.dimension, "chunking": chunking.as_dict(),
                    "index_type": None, "roots": [str(s) for s in sources], "next_vector_id": 0,
                    "dense": asdict(dense or DenseConfig())},
            documents={}, origins={},
        )
        empty = new_dense_index(np.zeros((0, embedder.dimension), np.float32), np.zeros(0, np.int64), "flat")
        index = cls([], [], empty, None, card)
        index.update(documents, embedder)
        return index

    @property
    def dense_config(self) -> DenseConfig:
        """When this index switches to IVF and how it is searched."""
        return DenseConfig(**self.card["config"].get("dense", {}))

    def update(self, documents: Iterable[Document], embedder: Embedder, *, remove_missing: bool = False,
               keep: Iterable[str] = (), origins: dict[str, str] | None = None) -> UpdateReport:
        """Add new and changed documents (only they are embedded); with `remove_missing`, drop the rest.

        `keep` names documents never dropped as missing (their file failed to load); `origins`
        records the file each given document came from.
        """
        self.check_embedder(embedder)
        documents = list(documents)
        report = UpdateReport()
        known = self.document_hashes
        fresh: list[Document] = []
        for doc in documents:
            if doc.id not in known:
                report.added.append(doc.id)
                fresh.append(doc)
            elif known[doc.id] != doc.content_hash:
                report.changed.append(doc.id)
                fresh.append(doc)
            else:
                report.unchanged += 1
        missing = set(known) - {doc.id for doc in documents} if remove_missing else set()
        report.kept = sorted(missing & set(keep))
        gone = missing - set(keep)
        report.removed = sorted(gone)
        self._drop(set(report.changed) | gone)
        chunking = ChunkingConfig(**self.card["config"]["chunking"])
        new_chunks = chunk_documents(fresh, embedder.count_tokens, chunking)
        if new_chunks:
            log.info("embedding %d chunks of %d documents with %s", len(new_chunks), len(fresh), embedder.name)
            vectors = embedder.encode([c.embedding_text for c in new_chunks], show_progress=len(new_chunks) > 256)
            start = int(self.card["config"]["next_vector_id"])
            ids = np.arange(start, start + len(new_chunks), dtype=np.int64)
            self.card["config"]["next_vector_id"] = start + len(new_chunks)
            self.dense.add_with_ids(vectors, ids)
            self.chunks.extend(new_chunks)
            self.vector_ids.extend(int(i) for i in ids)
        report.chunks_embedded = len(new_chunks)
        for doc_id in gone:
            del known[doc_id]
            self.origins.pop(doc_id, None)
        for doc in fresh:
            known[doc.id] = doc.content_hash
        self.origins.update(origins or {})
        if not self.chunks:
            raise KnowledgeError("the index would be empty: keep at least one document")
        self._refresh()
        return report

    def remove(self, doc_ids: Iterable[str]) -> list[str]:
        """Delete documents and their chunks; an unknown id is an error naming it (nothing is removed)."""
        doc_ids = list(dict.fromkeys(doc_ids))
        unknown = [doc_id for doc_id in doc_ids if doc_id not in self.document_hashes]
        if unknown:
            raise KnowledgeError(f"not in the index: {', '.join(map(repr, unknown))} (see `assistant kb search`)")
        if len(doc_ids) >= self.document_count:
            raise KnowledgeError("removing every document would leave the index empty: build a new one instead")
        self._drop(set(doc_ids))
        for doc_id in doc_ids:
            del self.document_hashes[doc_id]
            self.origins.pop(doc_id, None)
        self._refresh()
        return doc_ids

    def _drop(self, doc_ids: set[str]) -> None:
        if not doc_ids:
            return
        keep = [i for i, chunk in enumerate(self.chunks) if chunk.doc_id not in doc_ids]
        dropped = np.array([v for i, v in enumerate(self.vector_ids) if self.chunks[i].doc_id in doc_ids], np.int64)
        if len(dropped):
            self.dense.remove_ids(dropped)
        self.chunks = [self.chunks[i] for i in keep]
        self.vector_ids = [self.vector_ids[i] for i in keep]

    def _refresh(self) -> None:
        """Rebuild BM25 from chunk texts, switch flat/IVF by size, and re-map vector ids."""
        dense_config = self.dense_config
        self.keyword = _bm25s().BM25()
        self.keyword.index(keyword_tokens([c.embedding_text for c in self.chunks]), show_progress=False)
        wanted = dense_config.kind_for(len(self.chunks))
        if wanted != dense_kind(self.dense):
            ids = np.array(self.vector_ids, dtype=np.int64)
            log.info("re-indexing %d vectors as %s (no re-embedding)", len(ids), wanted)
            self.dense = new_dense_index(all_vectors(self.dense, ids), ids, wanted, dense_config)
        self.card["config"]["index_type"] = wanted
        self.card["metrics"] = {"documents": self.document_count, "chunks": len(self.chunks)}
        self.card["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self._position = {vector_id: position for position, vector_id in enumerate(self.vector_ids)}

    def check_embedder(self, embedder: Embedder) -> None:
        """Refuse an embedder other than the one the index was built with."""
        if self.embedder_name != embedder.name or self.dimension != embedder.dimension:
            raise KnowledgeError(
                f"the index was built with embedder {self.embedder_name!r} ({self.dimension} dims) but "
                f"{embedder.name!r} ({embedder.dimension} dims) is configured: rebuild the index with "
                "`assistant kb build` or configure the same embedder (ASSISTANT_EMBEDDER)"
            )

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write all files to a temporary folder, then swap it into place."""
        import faiss

        with atomic_directory(Path(path)) as tmp:
            with open(tmp / CHUNKS_FILE, "w", encoding="utf-8") as handle:
                for chunk, vector_id in zip(self.chunks, self.vector_ids, strict=True):
                    handle.write(json.dumps({**asdict(chunk), "vector_id": vector_id}, ensure_ascii=False) + "\n")
            faiss.write_index(self.dense, str(tmp / DENSE_FILE))
            self.keyword.save(str(tmp / KEYWORD_DIR), show_progress=False)
            self.card["checksums"] = folder_checksums(tmp)
            write_card(tmp, self.card)
        log.info("saved index with %d chunks to %s", len(self.chunks), path)

    @classmethod
    def load(cls, path: Path) -> KnowledgeIndex:
        """Load an index folder; a missing or damaged one is an error that says how to rebuild it."""
        import faiss

        bm25s = _bm25s()
        path = Path(path)
        recover(path)
        fix = _rebuild_hint(path)
        if not path.is_dir():
            raise KnowledgeError(f"no knowledge index at {path}: {fix}")
        missing = [name for name in INDEX_FILES if not (path / name).exists()]
        if missing:
            raise KnowledgeError(f"knowledge index at {path} is incomplete (missing {', '.join(missing)}): {fix}")
        card = _checked_card(path)
        fix = _rebuild_hint(path, card)
        _verify_checksums(path, card, fix)
        try:
            chunks, vector_ids = [], []
            with open(path / CHUNKS_FILE, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        record = json.loads(line)
                        vector_ids.append(int(record.pop("vector_id")))
                        chunks.append(Chunk(**record))
            dense = faiss.read_index(str(path / DENSE_FILE))
            keyword = bm25s.BM25.load(str(path / KEYWORD_DIR), show_progress=False)
        except Exception as err:  # any damaged file: faiss, json, numpy and bm25s raise their own types
            raise KnowledgeError(f"knowledge index at {path} is corrupt ({type(err).__name__}: {err}): {fix}") from err
        if dense.ntotal != len(chunks):
            raise KnowledgeError(
                f"knowledge index at {path} is corrupt ({dense.ntotal} vectors for {len(chunks)} chunks): {fix}")
        if any(a >= b for a, b in zip(vector_ids, vector_ids[1:], strict=False)):
            # chunks are written in vector-id order and BM25 finds them by line: moved lines answer wrongly
            raise KnowledgeError(f"knowledge index at {path} is damaged: {CHUNKS_FILE} is out of order: {fix}")
        return cls(chunks, vector_ids, dense, keyword, card)

    # -- search ----------------------------------------------------------------------------------
    def dense_search(self, vectors: np.ndarray, n: int) -> list[list[tuple[int, float]]]:
        """For each query vector, (chunk position, cosine similarity), best first."""
        n = min(n, len(self.chunks))
        scores, ids = self.dense.search(np.asarray(vectors, dtype=np.float32), n)
        return [[(self._position[int(i)], float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
                for row_ids, row_scores in zip(ids, scores, strict=True)]

    def similarity(self, position: int, vector: np.ndarray) -> float:
        """Cosine similarity of one stored chunk to a query vector."""
        return float(self.dense.reconstruct(self.vector_ids[position]) @ vector)

    def vectors(self, positions: Sequence[int]) -> np.ndarray:
        """The stored (normalised) vectors of the chunks at `positions`, one row each."""
        if not len(positions):
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids = np.array([self.vector_ids[p] for p in positions], dtype=np.int64)
        return np.asarray(self.dense.reconstruct_batch(ids), dtype=np.float32).reshape(len(ids), self.dimension)

    def keyword_all_scores(self, text: str) -> np.ndarray:
        """The BM25 score of every chunk for `text` (zeros when it has no searchable word), by position."""
        tokens = keyword_tokens([text])[0]
        if not tokens:
            return np.zeros(len(self.chunks), dtype=np.float32)
        return np.asarray(self.keyword.get_scores(tokens), dtype=np.float32)

    def keyword_scores(self, text: str, positions: Sequence[int]) -> list[tuple[int, float]]:
        """BM25 scores of the chunks at `positions`, best first."""
        tokens = keyword_tokens([text])[0]
        if not tokens or not positions:
            return []
        scores = self.keyword.get_scores(tokens)
        return sorted(((p, float(scores[p])) for p in positions), key=lambda item: -item[1])

    def keyword_search(self, text: str, n: int) -> list[tuple[int, float]]:
        """(chunk position, BM25 score) of chunks sharing words with `text`, best first."""
        tokens = keyword_tokens([text])
        if not tokens[0]:
            return []
        n = min(n, len(self.chunks))
        ids, scores = self.keyword.retrieve(tokens, k=n, show_progress=False, n_threads=1)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if s > 0]


def _rebuild_hint(path: Path, card: dict[str, Any] | None = None) -> str:
    """How to fix a missing or damaged index: build it again (from its own roots when known)."""
    roots = " ".join(card["config"].get("roots", [])) if card else ""
    return f"rebuild it with `assistant kb build {roots or 'PATH...'} --index {path}`"


def _checked_card(path: Path) -> dict[str, Any]:
    """The index card, or an error naming what is wrong with it."""
    fix = _rebuild_hint(path)
    try:
        card = read_card(path)
    except (OSError, ValueError) as err:
        raise KnowledgeError(f"knowledge index at {path} is damaged: {CARD} cannot be read ({err}): {fix}") from err
    config = card.get("config") if isinstance(card, dict) else None
    if not isinstance(config, dict):
        raise KnowledgeError(f"knowledge index at {path} is damaged: {CARD} has no config: {fix}")
    absent = [key for key in CARD_CONFIG_KEYS if key not in config]
    if not isinstance(card.get("documents"), dict):
        absent.append("documents")
    if absent:
        raise KnowledgeError(f"knowledge index at {path} is damaged: {CARD} lacks {', '.join(absent)}: {fix}")
    return card


def _verify_checksums(path: Path, card: dict[str, Any], fix: str) -> None:
    """Every file must match the checksum the card recorded when it was written."""
    expected = card.get("checksums")
    if not isinstance(expected, dict):
        log.warning("knowledge index at %s has no checksums (written by an earlier version), so a damaged file "
                    "cannot be found; %s to add them", path, fix)
        return
    found = folder_checksums(path)
    for name, digest in expected.items():
        if name not in found:
            raise KnowledgeError(f"knowledge index at {path} is incomplete (missing {name}): {fix}")
        if found[name] != digest:
            raise KnowledgeError(f"knowledge index at {path} is damaged: {name} does not match its checksum in "
                                 f"{CARD} (changed after it was written): {fix}")
