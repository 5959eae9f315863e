"""`train export`: real turns through a real DialogueManager, exported as the prompts the generator got."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from assistant.dialogue import Final
from assistant.errors import AssistantError
from assistant.handoff import AgentDesk
from assistant.store import Conversation
from training.export import ExportError, ExportOptions, export_options, export_transcripts
from training.records import read_transcripts

METADATA = {"conversation_id", "message_id", "channel", "created_at", "source", "feedback", "reason_code", "prompt",
            "evidence"}


@pytest.fixture
def manager(make_manager, store_url):
    return make_manager(database_url=store_url)


def say(manager, conversation_id, message, channel="web") -> Final:
    return list(manager.respond(conversation_id, message, channel=channel))[-1]


def export(manager, out: Path, **options) -> tuple[object, list[dict]]:
    summary = export_transcripts(manager.store, out, manager.settings, ExportOptions(**options), manager.evidence)
    return summary, [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def hand_over(manager, conversation_id: str, *replies: str) -> None:
    """The customer asks for a person, an agent takes the ticket and replies."""
    assert say(manager, conversation_id, "I want to talk to a human").decision == "escalate"
    desk = AgentDesk(manager.store)
    ticket = manager.store.active_ticket(conversation_id)
    desk.take_over(ticket, "ana")
    for reply in replies:
        desk.reply(ticket, "ana", reply)


def test_exported_prompt_is_exactly_what_the_generator_got(manager, tmp_path):
    questions = ["How do I reset my password?", "How do I set up two-factor authentication?",
                 "How do I return an item?", "How do I update my payment method?", "and how do I delete my account?"]
    finals = [say(manager, "c1", question) for question in questions]  # long enough for older turns to be summarised
    summary, rows = export(manager, tmp_path / "out.jsonl")
    assert (summary.records, summary.preferences, summary.conversations) == (5, 0, 1)
    assert [row["messages"][:-1] for row in rows] == manager.generator.calls
    assert "Earlier in this conversation" in rows[-1]["messages"][-2]["content"]
    assert any("> 1. " in call[-1]["content"] for call in manager.generator.calls)  # numbered steps
    for row, final in zip(rows, finals, strict=True):
        assert row["messages"][-1] == {"role": "assistant", "content": final.text}
        assert row["id"] == f"c1:{final.message_id}" and set(row["metadata"]) == METADATA
        assert row["metadata"] | {"created_at": None} == {
            "conversation_id": "c1", "message_id": final.message_id, "channel": "web", "created_at": None,
            "source": "bot", "feedback": None, "reason_code": "answer", "prompt": "server", "evidence": "stored"}
    assert len(read_transcripts([tmp_path / "out.jsonl"])) == 5  # the trainer's reader takes the file as it is


def test_thumbs_down_is_left_out_or_written_as_a_rejected_reply(manager, tmp_path):
    up, down = say(manager, "up", "How do I reset my password?"), say(manager, "down", "How do I return an item?")
    unrated = say(manager, "unrated", "How do I update my payment method?")
    manager.record_feedback("up", up.message_id, 1)
    manager.record_feedback("down", down.message_id, 1)
    manager.record_feedback("down", down.message_id, -1)  # the later rating stands
    _, rows = export(manager, tmp_path / "all.jsonl")
    assert [(r["metadata"]["message_id"], r["metadata"]["feedback"]) for r in rows] == [
        (up.message_id, 1), (unrated.message_id, None)]
    _, rows = export(manager, tmp_path / "positive.jsonl", positive_only=True)
    assert [r["metadata"]["message_id"] for r in rows] == [up.message_id]
    summary, rows = export(manager, tmp_path / "negatives.jsonl", negatives=True)
    assert (summary.records, summary.preferences) == (2, 1)
    [preference] = [r for r in rows if "rejected" in r]
    assert preference["prompt"] == manager.generator.calls[1] and preference["rejected"] == down.text
    assert preference["chosen"] is None and preference["metadata"]["feedback"] == -1


def test_agent_reply_after_a_handoff_is_the_target_of_the_question(manager, tmp_path):
    bad = say(manager, "c1", "How do I reset my password?")
    manager.record_feedback("c1", bad.message_id, -1)
    hand_over(manager, "c1", "Hi, I'm Ana.", "Tap Forgot password? on the sign-in screen; the link lasts 1 hour.")
    assert say(manager, "c1", "Thanks! Can I change my email too?").decision == "held"
    AgentDesk(manager.store).reply(manager.store.active_ticket("c1"), "ana", "Yes: Settings > Account > Email.")
    summary, rows = export(manager, tmp_path / "out.jsonl", negatives=True)
    assert (summary.records, summary.preferences) == (2, 1)
    preference, agent, follow_up = rows
    assert agent["messages"][:-1] == manager.generator.calls[0] == preference["prompt"]  # the question's own prompt
    assert agent["messages"][-1]["content"] == ("Hi, I'm Ana.\n\nTap Forgot password? on the sign-in screen; the "
                                                "link lasts 1 hour.")
    assert agent["metadata"]["source"] == "agent" and agent["metadata"]["reason_code"] == "human_request"
    assert agent["metadata"]["feedback"] is None and agent["metadata"]["evidence"] == "stored"
    assert preference["chosen"] == agent["messages"][-1]["content"] and preference["rejected"] == bad.text
    assert follow_up["messages"][-2]["content"].endswith("\n\nQuestion: Thanks! Can I change my email too?")
    assert follow_up["messages"][-1]["content"] == "Yes: Settings > Account > Email."
    assert follow_up["metadata"]["evidence"] == "none"  # the bot was held: no retrieval to rebuild from
    _, rows = export(manager, tmp_path / "default.jsonl")
    assert [r["metadata"]["source"] for r in rows] == ["agent", "agent"]  # the rated-down answer is left out


def test_question_handed_over_at_once_gets_the_evidence_the_server_would_place(make_manager, store_url, tmp_path):
    handed = make_manager(database_url=store_url, always_human_topics=[r"\bcoupon\b"])
    question = "How do I use a coupon code at checkout?"
    assert say(handed, "handed", question).reason == "human_topic"
    ticket = handed.store.active_ticket("handed")
    AgentDesk(handed.store).take_over(ticket, "ana")
    AgentDesk(handed.store).reply(ticket, "ana", "Enter it in the Promo code box before you pay.")
    answering = make_manager(database_url=store_url, always_human_topics=[])
    say(answering, "answered", question)
    _, rows = export(handed, tmp_path / "out.jsonl")
    [agent] = [r for r in rows if r["metadata"]["conversation_id"] == "handed"]
    assert agent["metadata"]["evidence"] == "rebuilt" and agent["metadata"]["reason_code"] == "human_topic"
    assert agent["messages"][:-1] == answering.generator.calls[0]


def test_a_bot_answer_replaced_by_the_agent_is_not_a_target(manager, tmp_path):
    say(manager, "c1", "How do I reset my password?")
    hand_over(manager, "c1", "Use Forgot password? on the sign-in screen.")
    _, rows = export(manager, tmp_path / "out.jsonl")
    assert [(r["metadata"]["source"], r["messages"][-1]["content"]) for r in rows] == [
        ("agent", "Use Forgot password? on the sign-in screen.")]


def test_a_request_for_a_human_alone_is_no_question(manager, tmp_path):
    hand_over(manager, "c1", "Hello, how can I help?")
    say(manager, "c1", "How do I reset my password?")
    AgentDesk(manager.store).reply(manager.store.active_ticket("c1"), "ana", "Tap Forgot password?.")
    _, rows = export(manager, tmp_path / "out.jsonl")
    [row] = rows
    assert row["messages"][-2]["content"] == "How do I reset my password?"
    assert row["messages"][-1]["content"] == "Tap Forgot password?."


def test_channels_and_dates_select_conversations(manager, tmp_path):
    for channel in ("web", "api", "cli", "eval"):
        say(manager, f"on-{channel}", "How do I reset my password?", channel=channel)
    with manager.store.engine.begin() as conn:
        conn.execute(update(Conversation).where(Conversation.id == "on-cli")
                     .values(created_at=export_options(since="2025-03-01T10:00:00").since))

    def exported(name, **flags):
        _, rows = export(manager, tmp_path / f"{name}.jsonl", **vars(export_options(**flags)))
        return [r["metadata"]["channel"] for r in rows]

    assert exported("default") == ["cli", "web", "api"]  # oldest first, eval left out
    assert exported("api", channel="api,web") == ["web", "api"]
    assert exported("eval", channel="eval") == ["eval"]
    assert exported("since", since="2026-01-01") == ["web", "api"]
    assert exported("until", until="2025-03-01") == ["cli"]  # a bare date runs to the end of that day
    assert exported("offset", since="2025-03-01T11:00+01:00", until="2025-03-01T10:00:01") == ["cli"]
    with pytest.raises(ExportError, match="no conversations .*started before 2025-03-01T10:00:00"):
        exported("half-open", since="2025-03-01T09:00", until="2025-03-01T11:00+01:00")


def test_what_the_store_redacted_stays_redacted(manager, tmp_path):
    say(manager, "c1", "My email is jane.doe@example.com, how do I reset my password?")
    assert "jane.doe@example.com" in manager.generator.calls[0][-1]["content"]  # the live prompt held it
    hand_over(manager, "c1", "I sent the link to you, or call me on +44 20 7946 0958.")
    out = tmp_path / "out.jsonl"
    export(manager, out)
    written = out.read_text(encoding="utf-8")
    assert "jane.doe@example.com" not in written and "7946" not in written
    assert "My email is [EMAIL]" in written and "[PHONE]" in written


@pytest.mark.parametrize(("flags", "message"), [
    ({"since": "yesterday"}, "--since 'yesterday' is not a date: write it as YYYY-MM-DD"),
    ({"until": "2026-13-01"}, "--until '2026-13-01' is not a date"),
    ({"since": "2026-02-01", "until": "2026-01-31"}, "is not before --until"),
    ({"channel": "web,sms"}, "--channel 'sms' is not a channel: give one or more of web, api, cli, eval"),
    ({"channel": ","}, "--channel nothing is not a channel"),
    ({"feedback": "negative"}, "--feedback 'negative' is not a choice"),
])
def test_bad_options_are_clear_errors(flags, message):
    with pytest.raises(AssistantError, match=message):
        export_options(**flags)


def test_nothing_to_export_writes_nothing(manager, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("previous export\n")
    with pytest.raises(ExportError, match="no conversations in the store match .*Widen --since"):
        export(manager, out)
    say(manager, "c1", "I want to talk to a human")  # a handoff notice is no target
    down = say(manager, "c2", "How do I reset my password?")
    manager.record_feedback("c2", down.message_id, -1)
    with pytest.raises(ExportError, match="2 conversation.*none has a reply to learn from.*--negatives"):
        export(manager, out)
    assert out.read_text() == "previous export\n" and list(tmp_path.glob(".out.jsonl.*")) == []


def test_unwritable_output_is_a_clear_error_before_any_work(manager, tmp_path):
    say(manager, "c1", "How do I reset my password?")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ExportError, match="a-file is not a folder this process can write"):
        export(manager, tmp_path / "a-file" / "out.jsonl")
    with pytest.raises(ExportError, match="is a folder: name a file"):
        export(manager, tmp_path)


def test_cli_exports_and_reports_bad_input_in_one_line(make_manager, hash_index_dir, tmp_path):
    manager = make_manager()  # the default SQLite store under the data dir
    env = {**os.environ, "ASSISTANT_EMBEDDER": "hash", "ASSISTANT_INDEX": str(hash_index_dir)}

    def assistant(*args):
        return subprocess.run([sys.executable, "-m", "assistant.cli", "train", "export", *args], capture_output=True,
                              text=True, env=env, timeout=300)

    say(manager, "c1", "How do I reset my password?")
    done = assistant("--out", str(tmp_path / "out.jsonl"), "--channel", "web,api")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote 1 training records from 1 conversations to {tmp_path / 'out.jsonl'}\n"
    failed = assistant("--out", str(tmp_path / "x.jsonl"), "--since", "last week")
    assert failed.returncode == 2 and failed.stderr.startswith("error: --since 'last week' is not a date")
    assert len(failed.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.jsonl").exists()
