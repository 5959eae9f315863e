"""`assistant kb ...` when files, indexes or folders are bad: a clear line and exit status 2, data kept."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

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


def unwritable_cases(tmp_path: Path) -> list[tuple[list[str], dict]]:
    """Places that cannot be written even by root: a path below a regular file."""
    (tmp_path / "afile").write_text("not a folder")
    return [(["--index", str(tmp_path / "afile" / "idx")], {}),
            ([], {"ASSISTANT_DATA_DIR": str(tmp_path / "afile" / "data")})]


def test_kb_build_where_nothing_can_be_written_is_one_clear_line(tmp_path: Path):
    root = tmp_path / "kb"
    root.mkdir()
    (root / "refunds.md").write_text("# Refunds\n\nRefunds take 5 days.", encoding="utf-8")
    for args, env in unwritable_cases(tmp_path):
        result = assistant("kb", "build", str(root), *args, env={**ENV, **env})
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"{tmp_path / 'afile'} is a file, not a folder" in lines[0]
        assert "ASSISTANT_DATA_DIR" in lines[0] and "--index" in lines[0]


def test_kb_build_into_a_read_only_folder_is_one_clear_line(tmp_path: Path):
    """A read-only bind mount in a private mount namespace: refused even to root, gone with the process."""
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare cannot make a private mount namespace here")
    folder, root = tmp_path / "readonly", tmp_path / "kb"
    folder.mkdir()
    root.mkdir()
    (root / "refunds.md").write_text("# Refunds\n\nRefunds take 5 days.", encoding="utf-8")
    build = [sys.executable, "-m", "assistant.cli", "kb", "build", str(root), "--index", str(folder / "idx")]
    script = f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && {shlex.join(build)}"
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, **ENV})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"error: cannot write {folder / 'idx'}: {folder} is on a read-only file system" in result.stderr
    assert not (folder / "idx").exists()
