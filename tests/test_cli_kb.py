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
