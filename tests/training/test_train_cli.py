"""`assistant train sft` and `train promote` run as a user runs them: a real process, real files, exit codes."""

from __future__ import annotations

import json

from knowledge.artifacts import read_card
from knowledge.demo_data import TESTSET
from tests.test_cli import assistant, fast_env  # noqa: F401  (fixture)

TRANSCRIPTS = str(__import__("pathlib").Path(TESTSET).with_name("transcripts.jsonl"))


def test_sft_writes_an_adapter_that_ask_serves_after_promotion(fast_env, hash_index_dir, isolated_env):  # noqa: F811
    trained = assistant("train", "sft", "--data", TRANSCRIPTS, "--from-index", str(hash_index_dir), "--out", "mine",
                        "--max-steps", "2", "--eval-every", "1", "--rank", "4", "--merge", env=fast_env)
    assert trained.returncode == 0, trained.stderr
    assert "adapter" in trained.stdout and "dev loss" in trained.stdout
    adapter = isolated_env / "adapters" / "mine"
    card = read_card(adapter)
    assert card["metrics"]["steps"] == 2 and card["config"]["sources"]["index_pairs"] > 0
    roles = {entry["role"]: entry for entry in card["data"]}
    assert roles["input"]["path"] == TRANSCRIPTS and roles["train"]["rows"] > roles["dev"]["rows"] > 0
    assert (isolated_env / "models" / "mine" / "config.json").is_file()  # --merge

    quality = isolated_env.parent / "gate.toml"  # an untrained tiny model: only refuse a loss of answers
    quality.write_text("[tolerances]\nanswer_rate = 1.0\n", encoding="utf-8")
    promoted = assistant("train", "promote", "mine", "--limit", "2", "--config", str(quality), env=fast_env)
    assert promoted.returncode == 0, promoted.stderr
    assert "gate PASSED: mine against production on 2 items" in promoted.stdout
    assert json.loads((isolated_env / "adapters" / "production.json").read_text()) == {"name": "mine"}
    asked = assistant("ask", "How do I reset my password?", "--json", env=fast_env)
    assert asked.returncode == 0, asked.stderr


def test_bad_training_input_is_one_clear_line(fast_env, tmp_path):  # noqa: F811
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "messages": [{"role": "user", "content": "hi"}]}\n{oops\n', encoding="utf-8")
    result = assistant("train", "sft", "--data", str(bad), "--out", "x", env=fast_env)
    assert result.returncode == 2
    assert "line 1: has no assistant turn" in result.stderr and "line 2: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    missing = assistant("train", "promote", "nope", env=fast_env)
    assert missing.returncode == 2 and "adapter 'nope' not found" in missing.stderr
    nothing = assistant("train", "sft", "--out", "x", env=fast_env)
    assert nothing.returncode != 0 and "give training data" in nothing.stderr
    layout = assistant("train", "sft", "--data", TRANSCRIPTS, "--out", "x", "--layout", "zigzag", env=fast_env)
    assert layout.returncode == 2 and "use one of grouped, packed, single" in layout.stderr
