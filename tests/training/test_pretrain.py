"""`assistant train pretrain` on tiny models: perplexity falls, folders reload, resume continues, bad input is named."""

import json
import os
import shutil
import signal
from collections import namedtuple
from pathlib import Path

import pytest

from knowledge.artifacts import folder_checksums, read_card, sha256_file
from knowledge.demo_data import ARTICLES_DIR, TRANSCRIPTS
from tests.test_cli import assistant
from training.corpus import read_corpus, split_blocks, tokenize_documents
from training.records import TrainingDataError
from training.runs import model_fingerprint

MODEL_FILES = {"card.json", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json", "chat_template.jinja"}


def run(data, out="pt", **options):
    from assistant.config import load_settings
    from training.pretrain import PretrainConfig, pretrain

    callbacks = options.pop("callbacks", ())
    defaults = {"block_size": 64, "batch_size": 8, "max_steps": 4, "save_steps": 100}
    config = PretrainConfig(data=[Path(p) for p in data], out=out, **{**defaults, **options})
    return pretrain(config, load_settings(), callbacks=callbacks)


@pytest.fixture
def support_text(tmp_path: Path) -> Path:
    """A small folder of articles: enough for a few blocks of 64 tokens in each split."""
    folder = tmp_path / "articles"
    shutil.copytree(ARTICLES_DIR / "billing", folder / "billing")
    shutil.copytree(ARTICLES_DIR / "shipping", folder / "shipping")
    return folder


def test_from_scratch_perplexity_falls_and_the_folder_reloads(tiny_model_dir: Path, isolated_env: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = run([ARTICLES_DIR, TRANSCRIPTS], from_scratch=True, preset="tiny", tokenizer=str(tiny_model_dir),
                 max_steps=12, lr=3e-3)

    assert result.path == isolated_env / "models" / "pt"
    assert {p.name for p in result.path.iterdir()} == MODEL_FILES
    card = read_card(result.path)
    metrics = card["metrics"]
    assert metrics["dev_perplexity_after"] < metrics["dev_perplexity_before"]
    assert metrics["steps"] == 12 and metrics["train_tokens"] > 0 and metrics["dev_blocks"] >= 1
    assert 1 < metrics["dev_perplexity_unigram"] < metrics["dev_perplexity_before"]
    assert card["kind"] == "model" and card["base"]["path"] == "scratch"
    assert [(d["path"], d["rows"]) for d in card["data"]] == [(str(ARTICLES_DIR), 47), (str(TRANSCRIPTS), 64)]
    assert card["data"][1]["sha256"] == sha256_file(TRANSCRIPTS)
    assert card["config"]["preset"] == "tiny" and card["config"]["architecture"]["num_hidden_layers"] == 2
    model = AutoModelForCausalLM.from_pretrained(result.path)
    assert model.config.hidden_size == 64 and AutoTokenizer.from_pretrained(result.path).chat_template
    assert not (isolated_env / "checkpoints" / "pt").exists()


def test_continued_pretraining_records_its_base(tiny_model_dir: Path, support_text: Path, tmp_path: Path):
    texts = tmp_path / "notes.jsonl"
    texts.write_text('{"text": "Refunds reach your card within 5 to 10 business days."}\n'
                     '{"id": "t1", "messages": [{"role": "user", "content": "Where is my parcel?"}, '
                     '{"role": "assistant", "content": "Tracking shows it in transit."}]}\n', encoding="utf-8")

    result = run([support_text, texts], base=str(tiny_model_dir), lr=1e-3)

    card = read_card(result.path)
    assert card["base"] == {"path": str(tiny_model_dir), "sha256": model_fingerprint(tiny_model_dir)}
    assert card["data"][1]["rows"] == 2 and card["config"]["from_scratch"] is False
    assert card["metrics"]["dev_perplexity_after"] < card["metrics"]["dev_perplexity_before"]


def test_ctrl_c_keeps_a_checkpoint_and_resume_continues_from_it(tiny_model_dir: Path, support_text: Path,
                                                                 isolated_env: Path):
    from transformers import TrainerCallback

    from assistant.errors import ConfigError
    from training.runs import TrainingInterrupted

    previous = isolated_env / "models" / "pt"
    shutil.copytree(tiny_model_dir, previous)
    before = folder_checksums(previous)

    class CtrlCAtStep2(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    class FirstStep(TrainerCallback):
        seen: list[int] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.seen.append(state.global_step)

    options = {"base": str(tiny_model_dir), "max_steps": 6}
    with pytest.raises(TrainingInterrupted) as stopped:
        run([support_text], callbacks=[CtrlCAtStep2()], **options)
    message = str(stopped.value)
    assert "checkpoint-2 is kept" in message and "--max-steps 6" in message and message.endswith(" --resume")
    assert folder_checksums(previous) == before  # the earlier model is untouched
    with pytest.raises(ConfigError, match="--resume"):
        run([support_text], **options)

    result = run([support_text], resume=True, callbacks=[FirstStep()], **options)

    assert FirstStep.seen[0] == 3 and result.card["metrics"]["steps"] == 6
    assert result.card["metrics"]["resumed_from_step"] == 2
    assert folder_checksums(previous) != before and not (isolated_env / "checkpoints" / "pt").exists()


def test_resume_with_other_data_is_refused(tiny_model_dir: Path, support_text: Path, isolated_env: Path):
    from assistant.errors import ConfigError

    folder = isolated_env / "checkpoints" / "pt"
    (folder / "checkpoint-2").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"model": {}, "data": [], "split": {}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="model, data, split differ"):
        run([support_text], base=str(tiny_model_dir), resume=True)


def test_not_enough_disk_fails_before_writing(tiny_model_dir: Path, support_text: Path, isolated_env: Path,
                                              monkeypatch: pytest.MonkeyPatch):
    from training import runs

    previous = isolated_env / "models" / "pt"
    shutil.copytree(tiny_model_dir, previous)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(runs.NotEnoughDisk, match="not enough disk space"):
        run([support_text], base=str(tiny_model_dir))
    assert {p.name for p in previous.iterdir()} == {p.name for p in tiny_model_dir.iterdir()}
    assert not (isolated_env / "checkpoints" / "pt").exists()


def test_malformed_jsonl_names_its_lines_and_skip_bad_goes_on(tiny_model_dir: Path, tmp_path: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    bad = tmp_path / "mixed.jsonl"
    bad.write_text('{"text": "Returns are free within 30 days."}\n{"text": "unterminated\n\n'
                   '{"id": "c9", "messages": [{"role": "user", "content": "hi"}]}\n{"title": "no text"}\n',
                   encoding="utf-8")
    with pytest.raises(TrainingDataError) as err:
        read_corpus([bad], tokenizer)
    message = str(err.value)
    assert "line 2: not valid JSON" in message and "line 4: has no assistant turn" in message
    assert 'line 5: needs "text"' in message and "--skip-bad" in message
    assert read_corpus([bad], tokenizer, skip_bad=True).sources[0]["rows"] == 1


def test_dev_split_is_by_document_and_never_empty(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = read_corpus([ARTICLES_DIR], tokenizer).texts
    split = split_blocks(texts, tokenize_documents(texts, tokenizer), 64)
    again = split_blocks(list(reversed(texts)), tokenize_documents(list(reversed(texts)), tokenizer), 64)
    assert 1 <= split.dev_documents < len(texts) // 5 and len(split.dev) >= 1
    assert (again.dev_documents, len(again.dev)) == (split.dev_documents, len(split.dev))  # order does not matter
    one = ["word " * 400]
    single = split_blocks(one, tokenize_documents(one, tokenizer), 64)  # one long text: the last blocks are dev
    assert len(single.dev) >= 1 and len(single.train) >= 1


def test_cli_pretrains_a_model_that_ask_uses(tiny_model_dir: Path, support_text: Path, hash_index_dir: Path,
                                             tmp_path: Path):
    bad = tmp_path / "notes.jsonl"
    bad.write_text('{"text": "Parcels ship within 2 days."}\n{"text": 3}\n', encoding="utf-8")
    args = ("train", "pretrain", "--data", str(support_text), "--data", str(bad), "--base", str(tiny_model_dir),
            "--out", "mini", "--max-steps", "2", "--block-size", "32", "--batch-size", "4")

    failed = assistant(*args)
    assert failed.returncode == 2 and "notes.jsonl, line 2" in failed.stderr and "Traceback" not in failed.stderr
    done = assistant(*args, "--skip-bad")
    assert done.returncode == 0, done.stderr
    assert "dev perplexity:" in done.stdout and "ASSISTANT_MODEL=mini" in done.stdout

    asked = assistant("ask", "How long does shipping take?", "--json", env={
        "ASSISTANT_MODEL": "mini", "ASSISTANT_EMBEDDER": "hash", "ASSISTANT_INDEX": str(hash_index_dir),
        "ASSISTANT_MAX_NEW_TOKENS": "4", "ASSISTANT_ABSTAIN_BELOW": "0.01", "ASSISTANT_MIN_EVIDENCE_SCORE": "-1"})
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout.strip().splitlines()[-1])["decision"]
