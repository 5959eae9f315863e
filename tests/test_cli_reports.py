"""`assistant eval logs|compare|gate` and `assistant report` run as a user runs them: real processes, exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.test_cli import assistant, fast_env  # noqa: F401  (fixture)

PNG = b"\x89PNG\r\n\x1a\n"


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_an_empty_store_gives_null_figures_and_a_report_that_says_no_data(fast_env, tmp_path):  # noqa: F811
    logs = assistant("eval", "logs", "--json", env=fast_env)
    assert logs.returncode == 0, logs.stderr
    figures = last_json(logs.stdout)
    assert figures["conversations"] == 0 and figures["resolution_rate"] is None and figures["knowledge_gaps"] == []
    report = assistant("report", "--out", str(tmp_path / "report"), env=fast_env)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    pngs = sorted((tmp_path / "report").glob("*.png"))
    assert len(pngs) == 6 and all(p.read_bytes().startswith(PNG) for p in pngs)
    assert page.count("data:image/png;base64,") == 6 and "No comparison yet" in page and "no data yet" in page


def test_bad_input_is_one_clear_line(fast_env, tmp_path):  # noqa: F811
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder", encoding="utf-8")
    cases = [
        (("eval", "logs", "--since", "last tuesday"), "--since 'last tuesday' is not a date"),
        (("eval", "logs", "--channel", "fax"), "--channel 'fax' is not a channel"),
        (("report", "--out", str(blocked / "inside")), f"cannot write the report to {blocked / 'inside'}"),
        (("eval", "gate", "--candidate", "nope"), "adapter 'nope' not found"),
        (("eval", "compare", "--a", "base", "--b", "nope"), "adapter 'nope' not found"),
        (("eval", "gate", "--candidate", "base", "--config", str(tmp_path / "none.toml")), "does not exist"),
        (("train", "promote", "nope"), "adapter 'nope' not found"),
    ]
    for args, message in cases:
        result = assistant(*args, env=fast_env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)


def test_compare_and_gate_run_the_tiny_model(fast_env, tmp_path):  # noqa: F811
    records = tmp_path / "items.jsonl"
    compared = assistant("eval", "compare", "--a", "base", "--b", "base", "--limit", "3", "--json", "--out",
                         str(records), env=fast_env)
    assert compared.returncode == 0, compared.stderr
    rows = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3 and rows[0]["a"]["id"] == rows[0]["b"]["id"] == rows[0]["id"]
    result = last_json(compared.stdout)
    assert result["n"] == 3 and result["a"] == result["b"] == "base"
    assert result["deltas"]["answer_rate"]["delta"] == 0.0 and result["differing"] == []
    quality = tmp_path / "gate.toml"  # latency moves with machine load; the quality figures of one model do not
    quality.write_text("[tolerances]\nanswer_rate = 0.0\nabstention = 0.0\ngroundedness = 0.0\n", encoding="utf-8")
    passed = assistant("eval", "gate", "--candidate", "base", "--baseline", "base", "--limit", "3",
                       "--config", str(quality), env=fast_env)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.startswith("gate PASSED: base against base on 3 items")
    report = assistant("report", "--out", str(tmp_path / "r"), env=fast_env)
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert report.returncode == 0 and "base (A) against base (B) on 3 items" in page and "passed" in page
    data_dir = Path(os.environ["ASSISTANT_DATA_DIR"])
    assert json.loads((data_dir / "reports" / "latest-gate.json").read_text())["passed"] is True
