"""`assistant kb ...` when files, indexes or folders are bad: a clear line and exit status 2, data kept."""

import json
from pathlib import Path

from tests.test_cli import assistant

ENV = {"ASSISTANT_EMBEDDER": "hash"}


def test_kb_build_with_an_unreadable_file_fails_and_keeps_its_documents(tmp_path: Path):
    root, index = tmp_path / "kb", str(tmp_path / "idx")
    root.mkdir()
    (root / "shipping.md").write_text("# Shipping\n\nParcels ship within 2 days.", encoding="utf-8")
    (root / "faq.csv").write_text("question,answer\nGift wrap?,Yes.\nPay later?,Yes.\nShip abroad?,EU only.\n",
                                  encoding="utf-8")
    assert assistant("kb", "build", str(root), "--index", index, env=ENV).returncode == 0
    (root / "faq.csv").write_bytes(b"question,answer\nGift wrap?,Yes \xe2 3 euros.\n")

    failed = assistant("kb", "build", str(root), "--index", index, env=ENV)
    assert failed.returncode == 2
    assert "faq.csv: not UTF-8" in failed.stderr and "--skip-bad" in failed.stderr
    assert "Traceback" not in failed.stderr
    skipped = assistant("kb", "build", str(root), "--index", index, "--skip-bad", env=ENV)
    assert skipped.returncode == 0, skipped.stderr
    assert "0 removed" in skipped.stdout and "3 kept from files that could not be loaded" in skipped.stdout
    assert "not loaded" in skipped.stderr and "faq.csv" in skipped.stderr
    stats = json.loads(assistant("kb", "stats", "--json", "--index", index, env=ENV).stdout)
    assert stats["documents"] == 4


def test_a_damaged_index_is_named_with_the_fix_and_kb_build_repairs_it(tmp_path: Path):
    root, index = tmp_path / "kb", tmp_path / "idx"
    root.mkdir()
    (root / "refunds.md").write_text("# Refunds\n\nRefunds take 5 days.", encoding="utf-8")
    (root / "vouchers.md").write_text("# Vouchers\n\nVouchers expire after a year.", encoding="utf-8")
    assert assistant("kb", "build", str(root), "--index", str(index), env=ENV).returncode == 0
    chunks = index / "chunks.jsonl"
    chunks.write_text("".join(reversed(chunks.read_text().splitlines(keepends=True))))
    search = assistant("kb", "search", "refunds", "--index", str(index), env=ENV)
    assert search.returncode == 2 and "Traceback" not in search.stderr
    assert "chunks.jsonl does not match its checksum" in search.stderr
    assert f"`assistant kb build {root} --index {index}`" in search.stderr

    (index / "card.json").write_text("{}")
    stats = assistant("kb", "stats", "--index", str(index), env=ENV)
    assert stats.returncode == 2 and "card.json has no config" in stats.stderr and "Traceback" not in stats.stderr
    assert assistant("kb", "build", str(root), "--index", str(index), env=ENV).returncode == 0
    found = assistant("kb", "search", "refunds", "-k", "1", "--json", "--index", str(index), env=ENV)
    assert json.loads(found.stdout)["hits"][0]["doc_id"] == "refunds"
