import json
from pathlib import Path

import pytest

from assistant.config import load_settings
from assistant.errors import ConfigError
from assistant.generation import ScriptedGenerator, TransformersGenerator
from assistant.models import SHIPPED_ADAPTER, resolve_adapter_dir, resolve_model_dir

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How do refunds work?"}]


def test_tiny_model_streams_pieces_and_stops(tiny_model_dir: Path):
    generator = TransformersGenerator(tiny_model_dir, device="cpu", threads=1, max_new_tokens=12, timeout_s=30)
    pieces = list(generator.stream(MESSAGES))
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert generator.count_tokens("".join(pieces)) <= 12 + 2
    assert generator.model_id == tiny_model_dir.name and generator.adapter_id is None


def test_greedy_generation_is_reproducible(tiny_model_dir: Path):
    generator = TransformersGenerator(tiny_model_dir, device="cpu", max_new_tokens=8)
    assert "".join(generator.stream(MESSAGES)) == "".join(generator.stream(MESSAGES))


def test_lora_adapter_folder_is_applied(tiny_model_dir: Path, tmp_path: Path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapters" / "tiny-lora")
    settings = load_settings(data_dir=tmp_path, adapter="tiny-lora")
    adapter_dir = resolve_adapter_dir(settings)
    generator = TransformersGenerator(tiny_model_dir, adapter_dir, device="cpu", max_new_tokens=4)
    assert generator.adapter_id == "tiny-lora"
    assert "".join(generator.stream(MESSAGES)) is not None


def test_production_pointer_and_base(tmp_path: Path):
    settings = load_settings(data_dir=tmp_path)
    assert resolve_adapter_dir(settings, "base") is None
    # nothing promoted yet: the shipped adapter for the embedded model, none for any other base
    assert resolve_adapter_dir(settings, "production") == SHIPPED_ADAPTER
    assert resolve_adapter_dir(settings.model_copy(update={"model": str(tmp_path)}), "production") is None
    assert resolve_adapter_dir(settings, "shipped") == SHIPPED_ADAPTER
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "production.json").write_text(json.dumps({"name": "gone"}))
    with pytest.raises(ConfigError, match="adapter 'gone' not found"):
        resolve_adapter_dir(settings, "production")


def test_missing_model_folder_names_the_fix(tmp_path: Path):
    settings = load_settings(data_dir=tmp_path, model=str(tmp_path / "no-such-model"))
    with pytest.raises(ConfigError, match="does not exist or has no config.json: set ASSISTANT_MODEL"):
        resolve_model_dir(settings)


def test_scripted_generator_streams_words():
    generator = ScriptedGenerator(lambda messages: f"echo {messages[-1]['content']}")
    assert "".join(generator.stream(MESSAGES)) == "echo How do refunds work?"
    assert generator.calls[0][-1]["content"] == "How do refunds work?"
