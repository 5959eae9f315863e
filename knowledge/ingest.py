"""Index maintenance as the CLI offers it: build (or incrementally refresh), add, remove.

Each operation loads the index, changes it in memory and saves it by writing a new folder that is
swapped into place, so an interrupted run leaves the previous index usable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from knowledge.artifacts import writing_lock
from knowledge.chunking import ChunkingConfig
from knowledge.documents import Document, KnowledgeError
from knowledge.embedder import Embedder
from knowledge.index import KnowledgeIndex, UpdateReport
from knowledge.loaders import JSONL_SUFFIXES, LoadReport, load_documents

log = logging.getLogger(__name__)


def build_index(paths: Sequence[Path], target: Path, embedder: Embedder, *, rebuild: bool = False,
                chunking: ChunkingConfig | None = None, skip_bad: bool = False
                ) -> tuple[KnowledgeIndex, UpdateReport, LoadReport]:
    """Index the documents under `paths` at `target`.

    An existing index built from the same embedder is refreshed incrementally: only new or changed
    documents are embedded and documents no longer present are removed. `rebuild` starts afresh.
    A file that fails to load is an error and nothing is written; with `skip_bad` the rest is
    indexed and that file's documents keep the version already indexed (none after `rebuild`).
    """
    with writing_lock(target):
        return _build_index([Path(p).resolve() for p in paths], target, embedder, rebuild, chunking, skip_bad)


def _build_index(paths: list[Path], target: Path, embedder: Embedder, rebuild: bool,
                 chunking: ChunkingConfig | None, skip_bad: bool) -> tuple[KnowledgeIndex, UpdateReport, LoadReport]:
    loaded = load_documents(paths)
    _refuse_failures(loaded, target, skip_bad)
    chunking = chunking or ChunkingConfig()
    existing = _existing(target, embedder) if not rebuild else None
    if (existing is not None and sorted(existing.roots) == sorted(map(str, paths))
            and existing.card["config"]["chunking"] == chunking.as_dict()):
        keep = existing.documents_from(path for path, _ in loaded.failed)
        report = existing.update(loaded.documents, embedder, remove_missing=True, keep=keep, origins=loaded.origins)
        index = existing
    else:
        index = KnowledgeIndex.build(loaded.documents, embedder, chunking, name=target.name,
                                     sources=[str(p) for p in paths])
        index.origins.update(loaded.origins)
        report = UpdateReport(added=[d.id for d in loaded.documents], chunks_embedded=len(index.chunks))
    index.card["skipped"] = [{"path": path, "reason": reason} for path, reason in loaded.skipped]
    index.card["failed"] = [{"path": path, "reason": reason} for path, reason in loaded.failed]
    index.save(target)
    return index, report, loaded


def add_to_index(paths: Sequence[Path], target: Path, embedder: Embedder, *, skip_bad: bool = False
                 ) -> tuple[KnowledgeIndex, UpdateReport, LoadReport]:
    """Add or refresh documents; files under a root the index was built from keep root-relative ids."""
    with writing_lock(target):
        return _add_to_index(paths, target, embedder, skip_bad)


def _add_to_index(paths: Sequence[Path], target: Path, embedder: Embedder, skip_bad: bool
                  ) -> tuple[KnowledgeIndex, UpdateReport, LoadReport]:
    index = KnowledgeIndex.load(target)
    loaded = LoadReport()
    for path in (Path(p).resolve() for p in paths):
        part = load_documents([path])
        prefix = _prefix(path, index.roots)
        for doc in part.documents:
            loaded.add(part.origins[doc.id], [_with_prefix(doc, prefix)])
        loaded.skipped.extend(part.skipped)
        loaded.failed.extend(part.failed)
    _refuse_failures(loaded, target, skip_bad)
    if not loaded.documents:
        raise KnowledgeError("nothing to add: none of the given paths held a readable document")
    report = index.update(loaded.documents, embedder, origins=loaded.origins)
    index.save(target)
    return index, report, loaded


def remove_from_index(doc_ids: Sequence[str], target: Path) -> KnowledgeIndex:
    """Delete documents (and their chunks) by id; unknown ids are an error and nothing changes."""
    with writing_lock(target):
        index = KnowledgeIndex.load(target)
        index.remove(doc_ids)
        index.save(target)
        return index


def _refuse_failures(loaded: LoadReport, target: Path, skip_bad: bool) -> None:
    """Files that failed to load stop the update (nothing is written) unless `skip_bad` says go on."""
    if not loaded.failed or skip_bad:
        return
    files = "".join(f"\n  {path}: {reason}" for path, reason in loaded.failed)
    raise KnowledgeError(
        f"{len(loaded.failed)} file(s) could not be loaded, so {target} was left unchanged:{files}\n"
        "fix them and run the command again, or pass --skip-bad to index the rest "
        "(their documents keep the version already indexed)")


def _existing(target: Path, embedder: Embedder) -> KnowledgeIndex | None:
    if not target.exists():
        return None
    try:
        index = KnowledgeIndex.load(target)
        index.check_embedder(embedder)
    except KnowledgeError as err:
        log.warning("rebuilding %s from scratch: %s", target, err)
        return None
    return index


def _prefix(path: Path, roots: Sequence[str]) -> str:
    """The folder of `path` relative to the index root that contains it ('' when none does)."""
    if path.suffix.lower() in JSONL_SUFFIXES:
        return ""  # JSONL documents carry their own ids
    folder = path if path.is_dir() else path.parent
    for root in map(Path, roots):
        if folder == root or root in folder.parents:
            return folder.relative_to(root).as_posix().strip(".")
    return ""


def _with_prefix(doc: Document, prefix: str) -> Document:
    return replace(doc, id=f"{prefix}/{doc.id}") if prefix else doc
