"""Artifact folders are swapped into place; what a killed write leaves behind goes on the next write."""

import signal
import subprocess
import sys
from pathlib import Path

from knowledge import Document
from knowledge.embedder import HashEmbedder
from knowledge.index import KnowledgeIndex

WRITER = """
import sys, time
from pathlib import Path
from knowledge.artifacts import atomic_directory
with atomic_directory(Path(sys.argv[1])) as tmp:
    (tmp / "dense.faiss").write_bytes(b"0" * 5_000_000)
    print("writing", flush=True)
    time.sleep(120)
"""


def start_writer(target: Path) -> subprocess.Popen:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    return writer


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.tmp-"))


def test_temporary_folders_of_killed_writes_are_removed_on_the_next_write(tmp_path: Path):
    target = tmp_path / "idx"
    index = KnowledgeIndex.build([Document("a", "A", "Refunds take 5 days.")], HashEmbedder())
    index.save(target)
    killed, running = start_writer(target), start_writer(target)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert len(leftovers(target)) == 2
        index.save(target)
        assert len(leftovers(target)) == 1  # the running writer's folder is still being written: kept
    finally:
        running.kill()
        running.wait()
    index.save(target)
    assert leftovers(target) == []
    assert KnowledgeIndex.load(target).document_count == 1


def test_a_previous_folder_left_by_a_killed_swap_is_removed_once_the_target_exists(tmp_path: Path):
    target = tmp_path / "idx"
    index = KnowledgeIndex.build([Document("a", "A", "Refunds take 5 days.")], HashEmbedder())
    index.save(target)
    (tmp_path / ".idx.old-0badf00d").mkdir()
    index.save(target)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["idx"]
