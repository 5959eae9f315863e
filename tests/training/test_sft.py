"""LoRA fine-tuning on a tiny random model: rendering, packing, the loss, the adapter and its card, resume, Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.prompts import IGNORE_INDEX, render_conversation, render_prompt
from knowledge.artifacts import folder_checksums, read_card, sha256_file
from training.data import Example
from training.runs import TrainingInterrupted
from training.sft import SFTConfig, grouped, pack, render, train_sft

SYSTEM = {"role": "system", "content": "You are Northwind Support."}
QA = [
    ("How long is the reset link valid?", "Reset links are valid for 60 minutes."),
    ("Can I change my email?", "Yes, go to Profile > Account > Email."),
    ("Do you ship to Canada?", "Yes, we ship to Canada in 3 to 5 business days."),
    ("How do I cancel my plan?", "Open Billing and tap Cancel plan."),
]


def examples(n: int = 24, prefix: str = "e") -> list[Example]:
    out = []
    for i in range(n):
        q, a = QA[i % len(QA)]
        messages = (SYSTEM, {"role": "user", "content": f"{q} ({i})"}, {"role": "assistant", "content": a})
        out.append(Example(f"{prefix}{i}", f"g{i}", messages, "last", "test", (q,)))
    return out


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_loss_is_on_the_replies_and_their_end_token_only(tokenizer):
    messages = [SYSTEM, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello there."},
                {"role": "user", "content": "bye"}, {"role": "assistant", "content": "Goodbye."}]
    rendered = render_conversation(tokenizer, messages)
    learned = tokenizer.decode([t for t, label in zip(rendered.input_ids, rendered.labels, strict=True)
                                if label != IGNORE_INDEX])
    assert learned == "Hello there.<|im_end|>Goodbye.<|im_end|>"
    last = render_conversation(tokenizer, messages, train_on="last")
    assert tokenizer.decode([t for t, label in zip(last.input_ids, last.labels, strict=True)
                             if label != IGNORE_INDEX]) == "Goodbye.<|im_end|>"
    # the prompt the server feeds is exactly the conversation's prefix before the reply
    prompt = render_prompt(tokenizer, messages[:4])
    assert rendered.input_ids[: len(prompt)] == prompt


def test_end_token_is_learned_when_it_is_also_the_pad_token(tokenizer):
    tokenizer.pad_token = tokenizer.eos_token  # SmolLM2's set-up
    rendered = render_conversation(tokenizer, [SYSTEM, {"role": "user", "content": "q"},
                                               {"role": "assistant", "content": "a."}])
    assert rendered.labels[-2] == tokenizer.eos_token_id  # ... then the newline, which is not learned
    assert rendered.labels[-1] == IGNORE_INDEX


def test_the_generator_prompt_is_the_renderer_prompt(tiny_model_dir, tokenizer):
    from assistant.generation import TransformersGenerator

    generator = TransformersGenerator(tiny_model_dir, device="cpu", max_new_tokens=4)
    messages = [SYSTEM, {"role": "user", "content": "How do I reset my password?"}]
    fed = generator._fit(list(messages), 1000)["input_ids"][0].tolist()
    assert fed == render_prompt(tokenizer, messages)


def test_packing_keeps_every_token_and_restarts_positions(tokenizer):
    rendered = render(examples(10), tokenizer, max_tokens=512)
    rows = pack(rendered, row_tokens=120)
    assert all(len(r["input_ids"]) <= 120 for r in rows)
    assert sum(len(r["input_ids"]) for r in rows) == sum(len(r.input_ids) for r in rendered)
    assert sum(p == 0 for r in rows for p in r["position_ids"]) == len(rendered)
    assert sorted(t for r in rows for t in r["labels"]) == sorted(t for r in rendered for t in r.labels)


def test_a_packed_row_gives_each_example_the_loss_it_has_alone(tiny_model_dir, tokenizer):
    """Packed examples attend within themselves only: the same loss as each run on its own."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from training.sft import RowCollator

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    rendered = render(examples(3), tokenizer, max_tokens=512)
    rows = pack(rendered, row_tokens=4096)
    assert len(rows) == 1
    batch = RowCollator(tokenizer.pad_token_id)(rows)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        packed = F.cross_entropy(logits[0, :-1], batch["labels"][0, 1:], reduction="sum")
        alone = sum(F.cross_entropy(model(input_ids=torch.tensor([r.input_ids])).logits[0, :-1],
                                    torch.tensor(r.labels[1:]), reduction="sum") for r in rendered)
    assert packed.item() == pytest.approx(alone.item(), rel=1e-4)


def varied(n: int) -> list[Example]:
    """Examples whose questions grow longer, so lengths differ."""
    return [Example(f"v{i}", f"g{i}", (SYSTEM, {"role": "user", "content": QA[0][0] + " please" * (4 * i)},
                                       {"role": "assistant", "content": QA[i % 4][1]}), "last", "test", (QA[0][0],))
            for i in range(n)]


def test_grouping_keeps_every_example_whole_within_the_token_budget(tokenizer):
    rendered = render(varied(12), tokenizer, max_tokens=512)
    batches = grouped(rendered, batch_tokens=200)
    rows = [row for batch in batches for row in batch["rows"]]
    assert sorted(r["input_ids"] for r in rows) == sorted(r.input_ids for r in rendered)
    assert all(r["position_ids"] == list(range(len(r["input_ids"]))) for r in rows)
    for batch in batches:
        widest = max(len(r["input_ids"]) for r in batch["rows"])
        assert len(batch["rows"]) == 1 or len(batch["rows"]) * widest <= 200
    assert any(len(b["rows"]) > 1 for b in batches) and len(batches) < len(rendered)


def test_a_grouped_batch_needs_no_mask_and_gives_each_example_the_loss_it_has_alone(tiny_model_dir, tokenizer):
    """Right padding with positions that keep counting: causal attention alone keeps the padding out."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM
    from transformers.masking_utils import find_packed_sequence_indices

    from training.sft import RowCollator

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    rendered = render(varied(3), tokenizer, max_tokens=512)
    assert len({len(r.input_ids) for r in rendered}) == 3
    batches = grouped(rendered, batch_tokens=4096)
    assert len(batches) == 1
    batch = RowCollator(tokenizer.pad_token_id)(batches)
    assert batch["input_ids"].shape[0] == 3
    assert find_packed_sequence_indices(batch["position_ids"]) is None  # read as plain sequences: no mask built
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        together = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
                                   reduction="sum")
        alone = sum(F.cross_entropy(model(input_ids=torch.tensor([r.input_ids])).logits[0, :-1],
                                    torch.tensor(r.labels[1:]), reduction="sum") for r in rendered)
    assert together.item() == pytest.approx(alone.item(), rel=1e-4)


def test_an_unknown_layout_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="grouped, packed, single"):
        SFTConfig(layout="zigzag")


def _train(tmp_path: Path, tiny_model_dir: Path, name: str = "tiny", resume: bool = False, **overrides):
    config = SFTConfig(**{"max_steps": 6, "lr": 5e-3, "eval_every": 3, "grad_accum": 1, "row_tokens": 256,
                          "patience": 0, "rank": 4, "alpha": 8, **overrides})
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(e.to_json()) + "\n" for e in examples()), encoding="utf-8")
    files = [{"path": str(data), "sha256": sha256_file(data), "rows": 24}]
    return train_sft(examples(), examples(4, "d"), base_dir=tiny_model_dir, base_name="tiny",
                     out_dir=tmp_path / "adapters" / name, checkpoint_dir=tmp_path / "checkpoints" / name,
                     config=config, data_files=files, resume=resume)


@pytest.mark.parametrize("layout", ["grouped", "packed"])
def test_training_lowers_dev_loss_and_writes_a_complete_card(tmp_path, tiny_model_dir, layout):
    result = _train(tmp_path, tiny_model_dir, layout=layout)
    metrics = result.metrics
    assert metrics["dev_loss"] < metrics["dev_loss_before"]
    assert metrics["steps"] == 6 and metrics["tokens_per_s"] > 0
    card = read_card(result.adapter_dir)
    for key in ("name", "kind", "created_at", "package_version", "base", "data", "config", "metrics",
                "prompt_version", "files"):
        assert card[key] not in (None, ""), key
    assert card["kind"] == "adapter" and card["base"]["sha256"] and card["data"][0]["rows"] == 24
    assert card["config"]["layout"] == layout
    assert card["files"] == folder_checksums(result.adapter_dir)  # the card matches the files
    assert sorted(p.name for p in result.adapter_dir.iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "card.json"]


def test_the_adapter_reloads_and_changes_the_output(tmp_path, tiny_model_dir):
    import torch

    from assistant.generation import TransformersGenerator

    result = _train(tmp_path, tiny_model_dir, max_steps=8)
    messages = [SYSTEM, {"role": "user", "content": "How long is the reset link valid?"}]
    base = TransformersGenerator(tiny_model_dir, device="cpu", max_new_tokens=8)
    tuned = TransformersGenerator(tiny_model_dir, result.adapter_dir, device="cpu", max_new_tokens=8)
    assert tuned.adapter_id == "tiny"
    with torch.no_grad():
        logits = [g.model(**g._fit(list(messages), 1000)).logits[0, -1] for g in (base, tuned)]
    assert not torch.allclose(logits[0], logits[1], atol=1e-3)
    assert "".join(tuned.stream(messages)) is not None  # streams with the adapter applied


def test_ctrl_c_keeps_the_served_adapter_and_a_checkpoint_that_resumes(tmp_path, tiny_model_dir, monkeypatch):
    from transformers import Trainer

    from assistant.errors import ConfigError

    first = _train(tmp_path, tiny_model_dir, max_steps=3)
    before = folder_checksums(first.adapter_dir)
    checkpoints = tmp_path / "checkpoints" / "tiny"
    assert not checkpoints.exists()  # a finished run leaves only its adapter
    original = Trainer.training_step
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", interrupted)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        _train(tmp_path, tiny_model_dir, max_steps=6)
    monkeypatch.undo()
    assert folder_checksums(first.adapter_dir) == before  # the adapter being served is untouched
    assert (checkpoints / "checkpoint-3").is_dir()
    with pytest.raises(ConfigError, match="pass --resume"):
        _train(tmp_path, tiny_model_dir, max_steps=6)
    with pytest.raises(ConfigError, match="the batches differ"):  # other batches: the Trainer would skip wrong ones
        _train(tmp_path, tiny_model_dir, max_steps=6, resume=True, layout="packed")
    resumed = _train(tmp_path, tiny_model_dir, max_steps=6, resume=True)
    assert resumed.metrics["steps"] == 6 and folder_checksums(first.adapter_dir) != before


def test_an_adapter_for_another_base_is_a_clear_error(tmp_path, tiny_model_dir):
    from assistant.errors import ConfigError
    from assistant.generation import TransformersGenerator
    from tests.helpers import make_tiny_model

    result = _train(tmp_path, tiny_model_dir, max_steps=1)
    other = make_tiny_model(tmp_path / "other", ["a small corpus of words"], hidden_size=48)
    with pytest.raises(ConfigError, match="does not fit the model"):
        TransformersGenerator(other, result.adapter_dir, device="cpu")


def test_the_shipped_adapter_matches_its_card():
    from assistant.models import SHIPPED_ADAPTER

    card = read_card(SHIPPED_ADAPTER)
    assert card["kind"] == "adapter" and card["base"]["path"] == "smollm2-135m-instruct"
    assert card["files"] == folder_checksums(SHIPPED_ADAPTER)
    assert sum(p.stat().st_size for p in SHIPPED_ADAPTER.iterdir()) <= 10 * 1024 * 1024
    assert card["prompt_version"] and card["metrics"]["dev_loss"] < card["metrics"]["dev_loss_before"]
    assert {"train", "dev"} <= {d.get("role") for d in card["data"]}
