"""Fine-tuning data: transcripts read line by line, server prompts rebuilt, index pairs, leaks, the split, DSTC11."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.dialogue.text import split_sentences
from knowledge.demo_data import TESTSET
from tests.conftest import SHARED_DATA
from tests.helpers import unavailable
from training.data import (
    DECLINE,
    Example,
    ServerPrompts,
    drop_leaks,
    heading_question,
    held_out_questions,
    normalise_question,
    pairs_from_index,
    rebuild_transcript,
    split,
)
from training.mixture import Mixture, assemble
from training.records import TrainingDataError, read_transcripts

DEMO = Path(TESTSET).parent
GOOD = {"id": "c1", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}]}


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_bad_lines_are_named_and_skip_bad_goes_on(tmp_path):
    path = write(tmp_path / "t.jsonl", [json.dumps(GOOD), "{not json", json.dumps({"id": "c2", "messages": [
        {"role": "user", "content": "only a question"}]}), json.dumps({**GOOD, "id": "c3"})])
    with pytest.raises(TrainingDataError) as err:
        read_transcripts([path])
    message = str(err.value)
    assert "line 2: not valid JSON" in message and "line 3: has no assistant turn" in message
    assert "--skip-bad" in message
    assert [t.id for t in read_transcripts([path], skip_bad=True)] == ["c1", "c3"]


def test_duplicate_ids_across_files_are_an_error(tmp_path):
    a = write(tmp_path / "a.jsonl", [json.dumps(GOOD)])
    b = write(tmp_path / "b.jsonl", [json.dumps(GOOD)])
    with pytest.raises(TrainingDataError, match="duplicate transcript id 'c1'"):
        read_transcripts([a, b])


def test_heading_questions():
    assert heading_question("Delete your Northwind account", "Changed your mind?") == "Changed your mind?"
    assert heading_question("Reset your password", "Steps") == "How do I reset your password?"
    assert heading_question("Refund policy", "Yearly plans") == "Refund policy: yearly plans?"


def test_split_is_deterministic_and_keeps_groups_together():
    examples = [Example(f"e{i}", f"g{i // 3}", (), "last") for i in range(60)]
    train, dev = split(examples, 0.1, seed=0)
    assert split(examples, 0.1, seed=0) == (train, dev)
    assert {e.group for e in train}.isdisjoint({e.group for e in dev}) and len(dev) == 6
    assert split(examples, 0.1, seed=1)[1] != dev


def test_leaked_questions_are_dropped():
    held = held_out_questions([TESTSET])
    question = json.loads(Path(TESTSET).read_text(encoding="utf-8").splitlines()[0])["question"]
    leaked = Example("x", "x", (), "last", questions=(question.upper() + "!",))
    clean = Example("y", "y", (), "last", questions=("something else entirely",))
    assert drop_leaks([leaked, clean], held) == [clean]


@pytest.fixture
def prompts(settings):
    from assistant.bootstrap import open_retriever

    return ServerPrompts(settings, open_retriever(settings))


def test_index_pairs_answer_with_the_server_evidence_verbatim(prompts):
    pairs = pairs_from_index(prompts)
    answered = [e for e in pairs if e.source == "index"]
    assert len(answered) > 50 and any(e.source == "index-near-miss" for e in pairs)
    for example in answered[:20]:
        system, *_, user, reply = example.messages
        assert system["role"] == "system" and user["content"].startswith("Evidence:")
        for line in reply["content"].splitlines():  # every target line is quoted evidence
            text = line.split(". ", 1)[1] if line[:1].isdigit() else line
            assert text.split(". ")[0][:40] in user["content"]
    assert all(e.messages[-1]["content"] == DECLINE for e in pairs if e.source == "index-near-miss")


def test_absent_name_questions_decline_and_short_targets_keep_the_best_sentences(prompts):
    from training.data import ABSENT_NAMES

    pairs = pairs_from_index(prompts, near_miss_every=0, target_sentences=1, absent_names=["Ethereum", "Northwind"],
                             absent_name_every=2)
    absent = [e for e in pairs if e.source == "index-absent-name"]
    assert absent and all(e.messages[-1]["content"] == DECLINE for e in absent)
    assert all("Ethereum" in e.questions[0] for e in absent)  # never a name the index uses ("Northwind")
    assert all(prompts.ranker.foreign_terms(e.questions[0]) for e in absent)
    assert all(e.messages[-2]["content"].startswith("Evidence:") for e in absent)  # its own article was found
    for example in (e for e in pairs if e.source == "index"):
        reply = example.messages[-1]["content"]
        assert reply[:1].isdigit() or len(split_sentences(reply)) <= 2  # one unit; a procedure keeps its steps
    assert "Bitcoin" not in ABSENT_NAMES and "Google Home" not in ABSENT_NAMES  # what the end-to-end tests ask


def test_rebuilt_transcripts_keep_only_checked_sentences(prompts):
    from training.records import Transcript

    transcript = Transcript("t", (
        {"role": "user", "content": "How long is the password reset link valid?"},
        {"role": "assistant", "content": "Reset links are valid for 60 minutes. Our office is on the moon."},
    ))
    [example] = rebuild_transcript(transcript, prompts)
    assert example.train_on == "last" and example.messages[-2]["content"].startswith("Evidence:")
    assert "60 minutes" in example.messages[-1]["content"]
    assert "moon" not in example.messages[-1]["content"]


def test_no_test_or_dev_question_reaches_the_shipped_mixture(settings, hash_index_dir):
    """The data `make adapter` trains on (demo transcripts + pairs from the demo index) holds no held-out question."""
    train, dev = assemble(Mixture(transcripts=[DEMO / "transcripts.jsonl"], index=str(hash_index_dir)), settings)
    held = held_out_questions([TESTSET, DEMO / "devset.jsonl"])
    asked = {normalise_question(q) for e in [*train, *dev] for q in e.questions}
    asked |= {normalise_question(m["content"].rsplit("Question: ", 1)[-1])
              for e in [*train, *dev] for m in e.messages if m["role"] == "user"}
    assert train and dev and not asked & held


def test_dstc11_turns_become_server_prompts_and_a_held_out_split():
    from training import grounded_dialogues as dstc11

    folder = SHARED_DATA / "dstc11"
    if not folder.is_dir():
        unavailable(f"DSTC11 data at {folder}")
    turns = dstc11.load_turns(folder)
    train, held = dstc11.split_turns(turns)
    assert len(turns) == 2129 and 0.1 < len(held) / len(turns) < 0.3
    assert {t.group for t in train}.isdisjoint({t.group for t in held})
    [example] = dstc11.examples(train[:1])
    assert example.messages[-2]["content"].startswith("Evidence:\n[1] ")
    assert example.messages[-1]["content"] == train[0].response


def test_dstc11_folder_without_files_is_a_clear_error(tmp_path):
    from training import grounded_dialogues as dstc11

    with pytest.raises(TrainingDataError, match="missing knowledge.json"):
        dstc11.load_turns(tmp_path)


def test_preference_records_of_an_export_are_not_trained_on(tmp_path):
    preference = {"id": "p1", "prompt": GOOD["messages"][:1], "chosen": None, "rejected": "Wrong.", "metadata": {}}
    path = write(tmp_path / "export.jsonl", [json.dumps(GOOD), json.dumps(preference)])
    assert [t.id for t in read_transcripts([path])] == ["c1"]


def test_the_leak_check_reads_the_question_inside_a_server_prompt():
    from training.records import Transcript

    question = json.loads(Path(TESTSET).read_text(encoding="utf-8").splitlines()[0])["question"]
    exported = Transcript("x", ({"role": "system", "content": "S"},
                                {"role": "user", "content": f"Evidence:\n[1] A\n> a\n\nQuestion: {question}"},
                                {"role": "assistant", "content": "A."}), {"prompt": "server"})
    example = Example.from_transcript(exported)
    assert example.train_on == "last" and drop_leaks([example], held_out_questions([TESTSET])) == []
