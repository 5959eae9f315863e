import json
from pathlib import Path

import pytest

from knowledge import Document, KnowledgeError
from knowledge.chunking import ChunkingConfig, chunk_documents
from knowledge.embedder import HashEmbedder
from knowledge.index import KnowledgeIndex
from knowledge.retriever import Retriever

DOCS = [
    Document("billing/refunds", "Refunds", "# Refunds\n\n## Timing\nRefunds reach your card in 5-10 business days."),
    Document("shipping/canada", "Shipping to Canada", "We ship to Canada with express delivery for $19."),
    Document("accounts/password", "Reset your password", "Tap Forgot password and follow the email link."),
]


def test_chunks_keep_doc_id_heading_path_and_hash():
    chunks = chunk_documents(DOCS, HashEmbedder().count_tokens, ChunkingConfig(chunk_tokens=50, overlap_tokens=5))
    refund = [c for c in chunks if c.doc_id == "billing/refunds"]
    assert refund[0].id == "billing/refunds#0"
    assert refund[0].section == "Timing"
    assert "Refunds — Timing" in refund[0].embedding_text
    assert all(c.content_hash for c in chunks)


def test_long_sections_are_split_within_the_token_budget():
    long = Document("long", "Long", " ".join(f"word{i}" for i in range(500)))
    chunks = chunk_documents([long], HashEmbedder().count_tokens, ChunkingConfig(chunk_tokens=100, overlap_tokens=10))
    assert len(chunks) >= 5
    assert all(HashEmbedder().count_tokens(c.text) <= 100 for c in chunks)


def test_build_save_load_search_roundtrip(tmp_path: Path):
    embedder = HashEmbedder()
    KnowledgeIndex.build(DOCS, embedder, name="t").save(tmp_path / "idx")
    files = {p.name for p in (tmp_path / "idx").iterdir()}
    assert {"card.json", "chunks.jsonl", "dense.faiss", "bm25"} <= files
    card = json.loads((tmp_path / "idx" / "card.json").read_text())
    assert card["kind"] == "index" and card["config"]["embedder"] == "hash"
    assert set(card["documents"]) == {d.id for d in DOCS}
    loaded = KnowledgeIndex.load(tmp_path / "idx")
    hits = Retriever(loaded, embedder).search("how long until my refund arrives on the card", k=2)
    assert hits[0].doc_id == "billing/refunds"
    assert 0.0 <= hits[0].confidence <= 1.0


def test_missing_and_corrupt_index_errors_say_how_to_rebuild(tmp_path: Path):
    with pytest.raises(KnowledgeError, match="no knowledge index at .* rebuild it with `assistant kb build"):
        KnowledgeIndex.load(tmp_path / "none")
    KnowledgeIndex.build(DOCS, HashEmbedder()).save(tmp_path / "idx")
    (tmp_path / "idx" / "dense.faiss").write_bytes(b"garbage")
    with pytest.raises(KnowledgeError, match="is damaged: dense.faiss does not match its checksum"):
        KnowledgeIndex.load(tmp_path / "idx")
    (tmp_path / "idx" / "chunks.jsonl").unlink()
    with pytest.raises(KnowledgeError, match="incomplete .*chunks.jsonl"):
        KnowledgeIndex.load(tmp_path / "idx")


def test_failed_rebuild_keeps_the_previous_index(tmp_path: Path):
    KnowledgeIndex.build(DOCS, HashEmbedder()).save(tmp_path / "idx")
    broken = KnowledgeIndex.build(DOCS[:1], HashEmbedder())
    broken.keyword = None  # saving fails half-way through
    with pytest.raises(AttributeError):
        broken.save(tmp_path / "idx")
    assert len(KnowledgeIndex.load(tmp_path / "idx").card["documents"]) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def test_index_from_another_embedder_is_refused(tmp_path: Path):
    index = KnowledgeIndex.build(DOCS, HashEmbedder(dimension=64))
    with pytest.raises(KnowledgeError, match="built with embedder 'hash' \\(64 dims\\)"):
        Retriever(index, HashEmbedder(dimension=128))


def test_empty_collection_is_refused():
    with pytest.raises(KnowledgeError, match="no documents to index"):
        KnowledgeIndex.build([], HashEmbedder())


@pytest.mark.parametrize("card", [{}, {"name": "idx", "kind": "index", "documents": {}}, [], "null"])
def test_a_damaged_card_is_an_error_naming_it_and_the_fix(tmp_path: Path, card):
    KnowledgeIndex.build(DOCS, HashEmbedder()).save(tmp_path / "idx")
    (tmp_path / "idx" / "card.json").write_text(card if isinstance(card, str) else json.dumps(card))
    with pytest.raises(KnowledgeError, match=r"card\.json .*: rebuild it with `assistant kb build"):
        KnowledgeIndex.load(tmp_path / "idx")


def test_the_card_holds_a_checksum_of_every_index_file(tmp_path: Path):
    KnowledgeIndex.build(DOCS, HashEmbedder()).save(tmp_path / "idx")
    card = json.loads((tmp_path / "idx" / "card.json").read_text())
    files = {p.relative_to(tmp_path / "idx").as_posix() for p in (tmp_path / "idx").rglob("*") if p.is_file()}
    assert set(card["checksums"]) == files - {"card.json"} and "dense.faiss" in files
    assert all(len(digest) == 64 for digest in card["checksums"].values())


def test_reordered_chunks_are_an_error_naming_the_file(tmp_path: Path):
    KnowledgeIndex.build(DOCS, HashEmbedder()).save(tmp_path / "idx")
    chunks = tmp_path / "idx" / "chunks.jsonl"
    lines = chunks.read_text().splitlines(keepends=True)
    chunks.write_text("".join(reversed(lines)))
    with pytest.raises(KnowledgeError, match=r"chunks\.jsonl does not match its checksum .*`assistant kb build"):
        KnowledgeIndex.load(tmp_path / "idx")


def test_an_index_without_checksums_loads_with_a_warning_but_reordering_is_still_found(tmp_path: Path, caplog):
    KnowledgeIndex.build(DOCS, HashEmbedder()).save(tmp_path / "idx")
    card_path = tmp_path / "idx" / "card.json"
    card = json.loads(card_path.read_text())
    del card["checksums"]  # as written by earlier versions
    card_path.write_text(json.dumps(card))
    loaded = KnowledgeIndex.load(tmp_path / "idx")
    assert loaded.document_count == 3 and "has no checksums" in caplog.text
    chunks = tmp_path / "idx" / "chunks.jsonl"
    chunks.write_text("".join(reversed(chunks.read_text().splitlines(keepends=True))))
    with pytest.raises(KnowledgeError, match=r"chunks\.jsonl is out of order"):
        KnowledgeIndex.load(tmp_path / "idx")
