"""The demo data keeps its contracts: test set, dev set and transcripts (ARCHITECTURE.md)."""

import json
import re

import pytest

from knowledge.demo_data import ARTICLES_DIR, DEVSET, TESTSET, TRANSCRIPTS
from knowledge.loaders import load_documents


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def doc_ids():
    return {d.id for d in load_documents([ARTICLES_DIR]).documents}


def test_help_center_covers_every_topic(doc_ids):
    assert len(doc_ids) >= 40
    categories = {doc_id.split("/")[0] for doc_id in doc_ids}
    assert categories == {"accounts", "billing", "plans", "shipping", "returns", "troubleshooting", "privacy",
                          "contact"}


@pytest.mark.parametrize("path, minimum, minimum_unanswerable", [(TESTSET, 60, 12), (DEVSET, 30, 8)])
def test_question_sets_follow_the_contract(path, minimum, minimum_unanswerable, doc_ids):
    items = rows(path)
    assert len(items) >= minimum and len({i["id"] for i in items}) == len(items)
    unanswerable = [i for i in items if i.get("answerable", True) is False]
    assert len(unanswerable) >= minimum_unanswerable
    assert sum(i["metadata"].get("kind") == "near_miss" for i in unanswerable) >= 8
    for item in items:
        assert item["question"].strip()
        if item.get("answerable", True):
            assert item["gold_doc_ids"] and set(item["gold_doc_ids"]) <= doc_ids, item["id"]
        else:
            assert item["gold_doc_ids"] == [], item["id"]
        for turn in item.get("history") or []:
            assert turn["role"] in ("user", "assistant") and turn["content"].strip()


def test_dev_and_test_questions_do_not_overlap():
    assert not {normalise(i["question"]) for i in rows(TESTSET)} & {normalise(i["question"]) for i in rows(DEVSET)}


def test_no_test_or_dev_question_appears_in_the_transcripts(doc_ids):
    transcripts = rows(TRANSCRIPTS)
    assert len(transcripts) >= 50
    text = " || ".join(normalise(m["content"]) for t in transcripts for m in t["messages"])
    for item in rows(TESTSET) + rows(DEVSET):
        assert normalise(item["question"]) not in text, item["id"]
    for transcript in transcripts:
        roles = {m["role"] for m in transcript["messages"]}
        assert roles <= {"system", "user", "assistant"} and {"user", "assistant"} <= roles
        assert set(transcript.get("metadata", {}).get("doc_ids", [])) <= doc_ids
