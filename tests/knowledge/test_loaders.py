from pathlib import Path

import pytest

from knowledge import KnowledgeError
from knowledge.demo_data import ARTICLES_DIR
from knowledge.loaders import load_documents


def test_markdown_folder_ids_titles_and_urls_from_front_matter():
    docs = {d.id: d for d in load_documents([ARTICLES_DIR]).documents}
    assert len(docs) >= 40
    doc = docs["accounts/reset-password"]
    assert doc.title == "Reset your password"
    assert doc.source == "https://help.northwind.example/accounts/reset-password"
    assert doc.metadata["category"] == "accounts"
    assert not doc.text.startswith("---")


def test_txt_and_jsonl(tmp_path: Path):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "hours.txt").write_text("We are open 9-5.", encoding="utf-8")
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"id": "faq-1", "title": "Hours", "text": "Open daily.", "url": null}\n\n'
                     '{"id": "faq-2", "text": "Closed on holidays.", "metadata": {"lang": "en"}}\n', encoding="utf-8")
    docs = {d.id: d for d in load_documents([tmp_path / "kb", jsonl]).documents}
    assert set(docs) == {"hours", "faq-1", "faq-2"}
    assert docs["faq-2"].title == "faq-2" and docs["faq-2"].metadata == {"lang": "en"}


def test_bad_files_are_reported_and_the_rest_goes_on(tmp_path: Path):
    (tmp_path / "good.md").write_text("# Good\nText.", encoding="utf-8")
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    report = load_documents([tmp_path])
    assert [d.id for d in report.documents] == ["good"]
    reasons = dict(report.skipped)
    assert "empty" in reasons[str(tmp_path / "empty.md")]
    assert "UTF-8" in reasons[str(tmp_path / "binary.txt")]
    assert "unsupported file type .png" in reasons[str(tmp_path / "image.png")]


def test_duplicate_jsonl_id_names_both_lines(tmp_path: Path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "a", "text": "z"}\n', encoding="utf-8")
    with pytest.raises(KnowledgeError, match="duplicate document id 'a' on lines 1 and 3"):
        load_documents([path])


@pytest.mark.parametrize("line, message", [("{not json", "line 1: not valid JSON"), ('{"id": "a"}', "missing text")])
def test_bad_jsonl_lines_are_named(tmp_path: Path, line: str, message: str):
    path = tmp_path / "docs.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match=message):
        load_documents([path])


def test_missing_path_is_a_clear_error(tmp_path: Path):
    with pytest.raises(KnowledgeError, match="does not exist"):
        load_documents([tmp_path / "nope"])
