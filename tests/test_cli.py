"""The `assistant` command run as a user runs it: a real process, real files, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from knowledge.demo_data import ARTICLES_DIR


def assistant(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


@pytest.fixture
def fast_env(tiny_model_dir: Path, hash_index_dir: Path) -> dict:
    return {"ASSISTANT_EMBEDDER": "hash", "ASSISTANT_INDEX": str(hash_index_dir),
            "ASSISTANT_MODEL": str(tiny_model_dir), "ASSISTANT_ABSTAIN_BELOW": "0.01",
            "ASSISTANT_MIN_EVIDENCE_SCORE": "-1", "ASSISTANT_MAX_NEW_TOKENS": "8"}


def test_help_is_fast_and_lists_commands():
    result = assistant("--help")
    assert result.returncode == 0
    for command in ("serve", "ask", "config", "db", "kb"):
        assert command in result.stdout


def test_kb_build_and_search_json_on_folder_and_jsonl(tmp_path: Path):
    jsonl = tmp_path / "extra.jsonl"
    jsonl.write_text('{"id": "promo-xmas", "title": "Holiday promo", "text": "Use code SNOW25 for 25% off."}\n')
    built = assistant("kb", "build", str(ARTICLES_DIR), str(jsonl), "--index", str(tmp_path / "idx"),
                      env={"ASSISTANT_EMBEDDER": "hash"})
    assert built.returncode == 0, built.stderr
    assert "48 added" in built.stdout and "now 48 documents" in built.stdout
    found = assistant("kb", "search", "holiday promo code SNOW25", "-k", "3", "--json", "--index",
                      str(tmp_path / "idx"), env={"ASSISTANT_EMBEDDER": "hash"})
    payload = json.loads(found.stdout.strip().splitlines()[-1])
    assert payload["hits"][0]["doc_id"] == "promo-xmas" and len(payload["hits"]) == 3
    stats = assistant("kb", "stats", "--json", "--index", str(tmp_path / "idx"), env={"ASSISTANT_EMBEDDER": "hash"})
    assert json.loads(stats.stdout)["documents"] == 48


def test_ask_json_logs_the_turn(fast_env: dict, isolated_env: Path):
    result = assistant("ask", "How do I reset my password?", "--json", env=fast_env)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["decision"] == "answer" and payload["answer"].strip()
    assert payload["citations"] and payload["sources"]
    from assistant.store import Store

    store = Store.open(f"sqlite:///{isolated_env / 'assistant.db'}")
    rows = store.messages(payload["conversation_id"])
    assert [(m.role, m.channel) for m in rows] == [("user", "cli"), ("assistant", "cli")]


def test_config_prints_masked_values(fast_env: dict):
    result = assistant("config", env={**fast_env, "ASSISTANT_AGENT_KEYS": "supersecret"})
    values = json.loads(result.stdout)
    assert values["agent_keys"] == ["su…"] and "supersecret" not in result.stdout


@pytest.mark.parametrize("args, env, message", [
    (["ask", ""], {}, "the message is empty"),
    (["ask", "x" * 20_000], {}, "20,000 characters long"),
    (["ask", "hello", "--index", "/nonexistent/idx"], {"ASSISTANT_EMBEDDER": "hash"}, "no knowledge index at"),
    (["ask", "hello"], {"ASSISTANT_MODEL": "/nonexistent/model"}, "set ASSISTANT_MODEL"),
    (["ask", "hello"], {"ASSISTANT_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/x"},
     "cannot reach the conversation store"),
    (["kb", "search", "x", "--index", "/nonexistent/idx"], {"ASSISTANT_EMBEDDER": "hash"}, "rebuild it with"),
    (["ask", "hi"], {"ASSISTANT_PORT": "abc"}, "ASSISTANT_PORT"),
])
def test_bad_input_exits_2_with_one_clear_line(fast_env: dict, args: list, env: dict, message: str):
    result = assistant(*args, env={**fast_env, **env})
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


@pytest.mark.parametrize("bad", ["x" * 65, "a b", "../../etc", ""])
def test_bad_conversation_id_exits_2_with_one_line_before_any_model_loads(bad: str):
    result = assistant("ask", "How do I reset my password?", "--conversation", bad,
                       env={"ASSISTANT_MODEL": "/nonexistent/model", "ASSISTANT_EMBEDDER": "hash"}, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --conversation: a conversation id is 1 to 64 characters of letters, digits, '_' and '-'"]


def test_conversation_id_with_nul_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys):
    from assistant import cli

    # a NUL cannot travel in a process's arguments, so this runs the entry point in this process
    monkeypatch.setattr(sys, "argv", ["assistant", "ask", "hello", "--conversation", "abc\x00def"])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --conversation: a conversation id is 1 to 64 characters of letters, digits, '_' and '-'"]


# Tests run as root, for whom permission bits do not stop writes: these places refuse new files to root too
# (/proc takes no new files or folders, and nothing can be created under a regular file).
@pytest.mark.parametrize("command, place, env, message", [
    ("db", "read-only data dir", {"ASSISTANT_DATA_DIR": "/proc"}, "/proc does not let this process create"),
    ("ask", "read-only data dir", {"ASSISTANT_DATA_DIR": "/proc"}, "/proc does not let this process create"),
    ("db", "missing data dir under a read-only parent", {"ASSISTANT_DATA_DIR": "/proc/nope/data"},
     "cannot create the folder /proc/nope/data"),
    ("db", "data dir under a regular file", {"ASSISTANT_DATA_DIR": "{file}/data"}, "{file} is a file, not a folder"),
    ("db", "store URL under /proc", {"ASSISTANT_DATABASE_URL": "sqlite:////proc/nope/a.db"},
     "cannot create the folder /proc/nope"),
    ("ask", "read-only data dir, store elsewhere",
     {"ASSISTANT_DATA_DIR": "/proc", "ASSISTANT_DATABASE_URL": "sqlite:///{file}.db"},
     "cannot write the default index to /proc/indexes/default"),
])
def test_unwritable_store_place_exits_2_with_one_line(tmp_path: Path, command, place, env, message):
    regular_file = tmp_path / "a-file"
    regular_file.write_text("not a folder")
    env = {key: value.format(file=regular_file) for key, value in env.items()}
    args = ["db", "upgrade"] if command == "db" else ["ask", "How do I reset my password?"]
    result = assistant(*args, env={"ASSISTANT_EMBEDDER": "hash", **env}, timeout=60)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message.format(file=regular_file) in line, place
    assert "Start the database" not in line
    assert "ASSISTANT_DATA_DIR" in line


def test_any_unwritable_path_exits_2_with_one_line_instead_of_a_traceback():
    result = assistant("kb", "build", str(ARTICLES_DIR), "--index", "/proc/nope/idx",
                       env={"ASSISTANT_EMBEDDER": "hash"}, timeout=120)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "/proc/nope" in last and "Traceback" not in result.stderr


def test_corrupt_index_keeps_logged_turns(fast_env: dict, isolated_env: Path, tmp_path: Path):
    ok = assistant("ask", "How do I reset my password?", "--json", env=fast_env)
    conversation = json.loads(ok.stdout.strip().splitlines()[-1])["conversation_id"]
    broken = tmp_path / "broken-index"
    broken.mkdir()
    (broken / "card.json").write_text("{")
    failed = assistant("ask", "hello", "--index", str(broken), env=fast_env)
    assert failed.returncode == 2 and "incomplete" in failed.stderr
    from assistant.store import Store

    assert len(Store.open(f"sqlite:///{isolated_env / 'assistant.db'}").messages(conversation)) == 2


def test_usage_error_exits_2():
    assert assistant("kb", "search").returncode == 2


def test_kb_refresh_add_remove_and_calibrate(tmp_path: Path):
    import shutil

    env = {"ASSISTANT_EMBEDDER": "hash"}
    root = tmp_path / "kb"
    shutil.copytree(ARTICLES_DIR, root)
    index = str(tmp_path / "idx")
    assert assistant("kb", "build", str(root), "--index", index, env=env).returncode == 0
    (root / "billing" / "refund-policy.md").write_text("# Refunds\n\nRefunds now take 3 days.", encoding="utf-8")
    refreshed = assistant("kb", "build", str(root), "--index", index, env=env)
    assert "0 added, 1 changed, 0 removed, 46 unchanged" in refreshed.stdout
    (root / "billing" / "gift-cards.md").write_text("# Gift cards\n\nGift cards never expire.", encoding="utf-8")
    added = assistant("kb", "add", str(root / "billing" / "gift-cards.md"), "--index", index, env=env)
    assert added.returncode == 0 and "1 added" in added.stdout and "now 48 documents" in added.stdout
    found = assistant("kb", "search", "gift cards expire", "-k", "1", "--json", "--index", index, env=env)
    assert json.loads(found.stdout)["hits"][0]["doc_id"] == "billing/gift-cards"
    removed = assistant("kb", "remove", "billing/gift-cards", "--index", index, env=env)
    assert removed.returncode == 0 and "now 47 documents" in removed.stdout
    unknown = assistant("kb", "remove", "billing/nope", "--index", index, env=env)
    assert unknown.returncode == 2 and "not in the index: 'billing/nope'" in unknown.stderr
    from knowledge.demo_data import DEVSET

    calibrated = assistant("kb", "calibrate", "--devset", str(DEVSET), "--index", index, env=env)
    assert calibrated.returncode == 0 and "calibrated on 47 questions" in calibrated.stdout
    stats = json.loads(assistant("kb", "stats", "--json", "--index", index, env=env).stdout)
    assert stats["documents"] == 47 and stats["index_type"] == "flat" and stats["disk_bytes"] > 0


def test_kb_search_metadata_filter_and_chunking_options(tmp_path: Path):
    env = {"ASSISTANT_EMBEDDER": "hash"}
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "en", "title": "Refunds", "text": "Refunds take five days.", "metadata": {"lang": "en"}}\n'
                    '{"id": "de", "title": "Refunds", "text": "Refunds take five days.", "metadata": {"lang": "de"}}\n')
    index = str(tmp_path / "idx")
    built = assistant("kb", "build", str(docs), "--index", index, "--chunk-tokens", "64", "--overlap-tokens", "8",
                      env=env)
    assert built.returncode == 0, built.stderr
    card = json.loads((tmp_path / "idx" / "card.json").read_text())
    assert card["config"]["chunking"] == {"chunk_tokens": 64, "overlap_tokens": 8}
    found = assistant("kb", "search", "refunds", "--filter", "lang=de", "--json", "--index", index, env=env)
    assert [hit["doc_id"] for hit in json.loads(found.stdout)["hits"]] == ["de"]
    bad = assistant("kb", "search", "refunds", "--filter", "lang", "--index", index, env=env)
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
