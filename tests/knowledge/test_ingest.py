"""Incremental index maintenance: only new or changed documents are embedded; nothing is lost."""

import json
from pathlib import Path

import numpy as np
import pytest

from knowledge import Document, KnowledgeError
from knowledge.dense import DenseConfig
from knowledge.embedder import HashEmbedder
from knowledge.index import KnowledgeIndex
from knowledge.ingest import add_to_index, build_index, remove_from_index
from knowledge.retriever import Retriever


class CountingEmbedder(HashEmbedder):
    """The hash embedder, counting every text it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def encode(self, texts, *, show_progress=False) -> np.ndarray:
        self.embedded += len(texts)
        return super().encode(texts)


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_rebuilding_a_changed_folder_embeds_only_what_changed(tmp_path: Path):
    root = tmp_path / "kb"
    for i in range(20):
        write(root, f"topic/doc{i}.md", f"# Doc {i}\n\nArticle number {i} about subject{i}.")
    embedder = CountingEmbedder()
    index, report, _ = build_index([root], tmp_path / "idx", embedder)
    assert len(report.added) == 20 and embedder.embedded == len(index.chunks)

    write(root, "topic/doc3.md", "# Doc 3\n\nRewritten: refunds now take 7 days.\n\n## More\nA second section.")
    write(root, "topic/new.md", "# New\n\nBrand new article about gift wrapping.")
    (root / "topic" / "doc5.md").unlink()
    embedder.embedded = 0
    index, report, _ = build_index([root], tmp_path / "idx", embedder)
    assert (report.added, report.changed, report.removed, report.unchanged) == (
        ["topic/new"], ["topic/doc3"], ["topic/doc5"], 18)
    changed_chunks = [c for c in index.chunks if c.doc_id in ("topic/doc3", "topic/new")]
    assert embedder.embedded == report.chunks_embedded == len(changed_chunks) == 3
    loaded = KnowledgeIndex.load(tmp_path / "idx")
    assert "topic/doc5" not in {c.doc_id for c in loaded.chunks} and loaded.dense.ntotal == len(loaded.chunks)
    retriever = Retriever(loaded, HashEmbedder())
    assert retriever.search("gift wrapping", k=1)[0].doc_id == "topic/new"
    assert retriever.search("refunds take 7 days", k=1)[0].doc_id == "topic/doc3"


def test_changing_one_of_10000_documents_embeds_only_its_chunks(tmp_path: Path):
    docs = [Document(f"faq-{i}", f"Question {i}", f"Answer {i}: item{i} ships in {i % 9 + 1} days.")
            for i in range(10_000)]
    embedder = CountingEmbedder()
    index = KnowledgeIndex.build(docs, embedder)
    embedder.embedded = 0
    docs[1234] = Document("faq-1234", "Question 1234", "Answer 1234 changed: item1234 is discontinued.")
    report = index.update(docs, embedder, remove_missing=True)
    assert report.changed == ["faq-1234"] and report.unchanged == 9_999
    assert embedder.embedded == len([c for c in index.chunks if c.doc_id == "faq-1234"]) == 1
    assert Retriever(index, HashEmbedder()).search("item1234 discontinued", k=1)[0].doc_id == "faq-1234"


def test_add_uses_ids_relative_to_the_index_root(tmp_path: Path):
    root = tmp_path / "kb"
    write(root, "billing/refunds.md", "# Refunds\n\nRefunds take 5 days.")
    build_index([root], tmp_path / "idx", HashEmbedder())
    write(root, "billing/vouchers.md", "# Vouchers\n\nVouchers expire after a year.")
    elsewhere = tmp_path / "other" / "press.md"
    write(tmp_path / "other", "press.md", "# Press\n\nPress enquiries go to press@example.com.")
    index, report, _ = add_to_index([root / "billing" / "vouchers.md", elsewhere], tmp_path / "idx", HashEmbedder())
    assert sorted(report.added) == ["billing/vouchers", "press"]
    assert set(KnowledgeIndex.load(tmp_path / "idx").document_hashes) == {"billing/refunds", "billing/vouchers",
                                                                          "press"}


def test_remove_deletes_chunks_and_unknown_ids_change_nothing(tmp_path: Path):
    root = tmp_path / "kb"
    for name in ("a", "b", "c"):
        write(root, f"{name}.md", f"# {name}\n\nText about {name}.")
    build_index([root], tmp_path / "idx", HashEmbedder())
    with pytest.raises(KnowledgeError, match="not in the index: 'zzz'"):
        remove_from_index(["a", "zzz"], tmp_path / "idx")
    assert KnowledgeIndex.load(tmp_path / "idx").document_count == 3
    index = remove_from_index(["a"], tmp_path / "idx")
    assert set(index.document_hashes) == {"b", "c"} and {c.doc_id for c in index.chunks} == {"b", "c"}
    with pytest.raises(KnowledgeError, match="leave the index empty"):
        remove_from_index(["b", "c"], tmp_path / "idx")


def test_add_with_another_embedder_is_refused_and_the_index_kept(tmp_path: Path):
    root = tmp_path / "kb"
    write(root, "a.md", "# A\n\nText.")
    build_index([root], tmp_path / "idx", HashEmbedder())
    write(root, "b.md", "# B\n\nMore.")
    with pytest.raises(KnowledgeError, match="built with embedder 'hash' \\(256 dims\\)"):
        add_to_index([root / "b.md"], tmp_path / "idx", HashEmbedder(dimension=64))
    assert KnowledgeIndex.load(tmp_path / "idx").document_count == 1


def test_large_collections_switch_to_ivf_without_re_embedding():
    docs = [Document(f"d{i}", f"T{i}", f"entry {i} word{i % 97} term{i % 13}") for i in range(400)]
    embedder = CountingEmbedder()
    index = KnowledgeIndex.build(docs[:100], embedder, dense=DenseConfig(ivf_min_vectors=300))
    assert index.card["config"]["index_type"] == "flat"
    index.update(docs, embedder)
    assert index.card["config"]["index_type"] == "ivf" and embedder.embedded == 400
    assert index.dense.ntotal == len(index.chunks)
    index.remove(["d7"])
    assert index.dense.ntotal == len(index.chunks) == 399 and index.card["config"]["index_type"] == "ivf"
    assert Retriever(index, HashEmbedder()).search("entry 250 word56 term3", k=3)[0].doc_id == "d250"


def test_a_removed_document_is_forgotten_and_can_come_back(tmp_path: Path):
    root = tmp_path / "kb"
    for name in ("a", "b", "c"):
        write(root, f"{name}.md", f"# {name}\n\nText about {name}.")
    build_index([root], tmp_path / "idx", HashEmbedder())
    (root / "c.md").unlink()
    index, _, _ = build_index([root], tmp_path / "idx", HashEmbedder())
    assert set(index.document_hashes) == {"a", "b"} and index.document_count == 2
    write(root, "c.md", "# c\n\nText about c.")
    index, report, _ = build_index([root], tmp_path / "idx", HashEmbedder())
    assert report.added == ["c"] and "c" in {chunk.doc_id for chunk in index.chunks}


def test_a_bad_jsonl_file_in_a_folder_is_skipped_when_asked(tmp_path: Path):
    root = tmp_path / "kb"
    write(root, "a.md", "# A\n\nText.")
    write(root, "broken.jsonl", "{not json\n")
    _, report, loaded = build_index([root], tmp_path / "idx", HashEmbedder(), skip_bad=True)
    assert report.added == ["a"] and "not valid JSON" in dict(loaded.failed)[str(root / "broken.jsonl")]


def test_an_interrupted_swap_is_recovered_on_load(tmp_path: Path):
    root = tmp_path / "kb"
    write(root, "a.md", "# A\n\nText.")
    build_index([root], tmp_path / "idx", HashEmbedder())
    (tmp_path / "idx").rename(tmp_path / ".idx.old-1234abcd")  # as if the process died between the renames
    assert KnowledgeIndex.load(tmp_path / "idx").document_count == 1


def test_a_file_that_fails_to_load_keeps_its_indexed_version(tmp_path: Path):
    root = tmp_path / "kb"
    write(root, "shipping.md", "# Shipping\n\nParcels ship within 2 days.")
    write(root, "faq.csv", "question,answer\nDo you gift wrap?,Yes for 3 euros.\n"
                           "Can I pay later?,Yes with invoice.\nDo you ship abroad?,Only within the EU.\n")
    build_index([root], tmp_path / "idx", HashEmbedder())
    (root / "faq.csv").write_bytes(b"question,answer\nDo you gift wrap?,Yes for 3 \xe2uros.\n")
    with pytest.raises(KnowledgeError, match=r"(?s)could not be loaded.*faq.csv: not UTF-8.*--skip-bad"):
        build_index([root], tmp_path / "idx", HashEmbedder())
    assert len(KnowledgeIndex.load(tmp_path / "idx").document_hashes) == 4

    write(root, "shipping.md", "# Shipping\n\nParcels ship within 1 day.")
    index, report, loaded = build_index([root], tmp_path / "idx", HashEmbedder(), skip_bad=True)
    assert report.changed == ["shipping"] and report.removed == []
    assert report.kept == ["faq:1", "faq:2", "faq:3"] and [p for p, _ in loaded.failed] == [str(root / "faq.csv")]
    loaded_index = KnowledgeIndex.load(tmp_path / "idx")
    assert set(loaded_index.document_hashes) == {"shipping", "faq:1", "faq:2", "faq:3"}
    assert Retriever(loaded_index, HashEmbedder()).search("ship abroad EU", k=1)[0].doc_id == "faq:3"


def test_a_jsonl_file_with_a_bad_line_is_loaded_whole_or_not_at_all(tmp_path: Path):
    root = tmp_path / "kb"
    write(root, "intro.md", "# Intro\n\nWelcome to the shop.")
    write(root, "faq.jsonl", '{"id": "a", "text": "Returns within 30 days."}\n'
                             '{"id": "b", "text": "Gift cards never expire."}\n')
    build_index([root], tmp_path / "idx", HashEmbedder())
    old_hash = KnowledgeIndex.load(tmp_path / "idx").document_hashes["a"]
    write(root, "faq.jsonl", '{"id": "a", "text": "Returns within 14 days."}\n{"id": "b", "text": \n')
    with pytest.raises(KnowledgeError, match="faq.jsonl: line 2: not valid JSON"):
        build_index([root], tmp_path / "idx", HashEmbedder())
    _, report, _ = build_index([root], tmp_path / "idx", HashEmbedder(), skip_bad=True)
    assert report.changed == [] and report.removed == [] and report.kept == ["a", "b"]
    assert KnowledgeIndex.load(tmp_path / "idx").document_hashes["a"] == old_hash


def test_skip_bad_keeps_documents_of_an_index_that_does_not_know_their_files(tmp_path: Path):
    root = tmp_path / "kb"
    write(root, "a.md", "# A\n\nAlpha.")
    write(root, "b.md", "# B\n\nBeta.")
    build_index([root], tmp_path / "idx", HashEmbedder())
    card_path = tmp_path / "idx" / "card.json"
    card = json.loads(card_path.read_text())
    del card["origins"]  # as written before origins were recorded
    card_path.write_text(json.dumps(card))
    (root / "b.md").write_bytes(b"\xff")
    _, report, _ = build_index([root], tmp_path / "idx", HashEmbedder(), skip_bad=True)
    assert report.removed == [] and report.kept == ["b"]
