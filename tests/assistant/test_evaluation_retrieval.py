import json
from pathlib import Path

import pytest

from assistant.errors import AssistantError
from assistant.evaluation.retrieval import evaluate_retrieval, item_scores
from assistant.evaluation.testsets import TestItem, load_testset


def test_item_scores_follow_the_definitions():
    scores = item_scores(["x", "gold", "y", "gold2"], {"gold", "gold2"}, (1, 5))
    assert scores["hit@1"] == 0.0 and scores["hit@5"] == 1.0 and scores["mrr"] == 0.5
    ideal = 1 + 1 / 1.5849625
    assert scores["ndcg@10"] == pytest.approx((1 / 1.5849625 + 1 / 2.3219281) / ideal, rel=1e-6)
    assert item_scores(["a"] * 3, {"gold"}, (1, 5))["mrr"] == 0.0


def test_mrr_is_zero_past_the_deepest_cut_off():
    ranked = [f"d{i}" for i in range(30)] + ["gold"]
    assert item_scores(ranked, {"gold"}, (1, 5, 20))["mrr"] == 0.0


def test_only_answerable_items_with_gold_are_scored_and_grouped():
    items = [TestItem("1", "q1", ("a",), metadata={"group": "g1"}),
             TestItem("2", "q2", ("b",), metadata={"group": "g2"}), TestItem("3", "q3", (), answerable=False)]
    summary, records = evaluate_retrieval(items, lambda item, depth: ["a", "b"], (1, 5), progress=False)
    assert summary["n"] == 2 and summary["hit@1"] == 0.5 and summary["hit@5"] == 1.0
    assert summary["groups"]["g2"]["mrr"] == 0.5 and [r["id"] for r in records] == ["1", "2"]


def test_testset_errors_and_unknown_gold_warning(tmp_path: Path, caplog):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "1", "question": "q", "gold_doc_ids": ["nope"]}\n'
                    '{"id": "2", "question": "r", "gold_doc_ids": ["a"]}\n', encoding="utf-8")
    load_testset(path, known_doc_ids={"a"})
    assert "1: nope" in caplog.text
    with pytest.raises(AssistantError, match="none of the gold doc ids of test set .* is in the index"):
        load_testset(path, known_doc_ids={"b"})
    path.write_text('{"id": "1", "question": "q"}\n{"id": "1", "question": "r"}\n', encoding="utf-8")
    with pytest.raises(AssistantError, match="line 2: duplicate id '1'"):
        load_testset(path)
    with pytest.raises(AssistantError, match="does not exist"):
        load_testset(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("field, value, message", [
    ("gold_doc_ids", "billing/refunds", r'line 2: gold_doc_ids must be a list .*e\.g\. \["billing/refunds"\]'),
    ("gold_doc_ids", [1], "line 2: gold_doc_ids must be a list of document ids"),
    ("history", "Hi there", "line 2: history must be a list of"),
    ("answerable", "false", "line 2: answerable must be true or false"),
])
def test_testset_fields_of_the_wrong_type_name_the_line_and_the_fix(tmp_path: Path, field, value, message):
    path = tmp_path / "t.jsonl"
    good = {"id": "q1", "question": "How long do refunds take?", "gold_doc_ids": ["billing/refunds"]}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "q2", field: value}) + "\n")
    with pytest.raises(AssistantError, match=message):
        load_testset(path)


def test_eval_retrieval_cli_json_and_records(hash_index_dir: Path, tmp_path: Path):
    from tests.test_cli import assistant

    out = tmp_path / "items.jsonl"
    result = assistant("eval", "retrieval", "--index", str(hash_index_dir), "-k", "1,5", "--json", "--out", str(out),
                       env={"ASSISTANT_EMBEDDER": "hash"})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(summary)[:5] == ["n", "hit@1", "hit@5", "mrr", "ndcg@10"] and "groups" in summary
    assert summary["n"] >= 48 and 0 < summary["hit@5"] <= 1 and "billing" in summary["groups"]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == summary["n"] and {"id", "retrieved", "hit@5"} <= set(records[0])
    table = assistant("eval", "retrieval", "--index", str(hash_index_dir), env={"ASSISTANT_EMBEDDER": "hash"})
    assert "hit@20" in table.stdout and "billing" in table.stdout
    bad = assistant("eval", "retrieval", "--index", str(hash_index_dir), "-k", "one",
                    env={"ASSISTANT_EMBEDDER": "hash"})
    assert bad.returncode == 2 and "comma-separated integers" in bad.stderr
