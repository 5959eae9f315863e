import json
from pathlib import Path

import pytest

from assistant.config import load_settings
from assistant.errors import ConfigError
from assistant.generation import ScriptedGenerator, TransformersGenerator
from assistant.models import SHIPPED_ADAPTER, resolve_adapter_dir, resolve_model_dir
from assistant.prompts import render_prompt

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


def test_the_system_prefix_is_cached_once_and_changes_no_token(tiny_model_dir: Path):
    """Prefix caching: prompts sharing the system message reuse its keys/values, with the same greedy tokens."""
    cached = TransformersGenerator(tiny_model_dir, device="cpu", max_new_tokens=12, threads=1)
    plain = TransformersGenerator(tiny_model_dir, device="cpu", max_new_tokens=12, threads=1, prefix_cache=False)
    system = {"role": "system", "content": "You are the support assistant of Northwind. Answer from the evidence."}
    calls = []
    forward = cached.model.forward
    cached.model.forward = lambda *a, **k: calls.append(k["input_ids"].shape[1]) or forward(*a, **k)
    for question in ("How do I reset my password?", "What is the return window?", "Is Premium monthly?"):
        messages = [system, {"role": "user", "content": question}]
        assert "".join(cached.stream(messages)) == "".join(plain.stream(messages))
    prefix = len(cached.prefix_cache._ids)
    assert prefix > 10 and calls.count(prefix) == 1  # computed once, for the first request only
    full = len(render_prompt(cached.tokenizer, messages))
    assert full - prefix in calls and full not in calls  # the last prompt: only what follows the prefix is computed
    # a prompt without that system message gets no cache, and the same tokens too
    other = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]
    assert "".join(cached.stream(other)) == "".join(plain.stream(other))


def test_a_peft_lora_becomes_a_gguf_lora_llama_cpp_can_apply(tiny_model_dir: Path, tmp_path: Path):
    """The conversion behind ASSISTANT_GENERATOR=llama_cpp (its run on the real model is in
    test_llama_cpp_generation.py): llama.cpp names, the alpha, A as is, and B's rows in GGUF's q/k order."""
    import gguf
    import numpy as np
    from peft import LoraConfig, get_peft_model
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM

    from assistant.llama_cpp_generation import _permute_rows, gguf_lora

    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "k_proj", "down_proj"],
                                           init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "tiny-lora")
    target = gguf_lora(tmp_path / "tiny-lora", tiny_model_dir, tmp_path / "gguf")
    assert gguf_lora(tmp_path / "tiny-lora", tiny_model_dir, tmp_path / "gguf") == target  # converted once
    reader = gguf.GGUFReader(str(target))
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == "llama" and fields["adapter.lora.alpha"] == 4.0
    written = {t.name: np.array(t.data).reshape([int(d) for d in reversed(t.shape)]) for t in reader.tensors}
    assert set(written) == {f"blk.{i}.{name}.weight.lora_{side}" for i in range(2)
                            for name in ("attn_q", "attn_k", "ffn_down") for side in "ab"}
    source = load_file(str(tmp_path / "tiny-lora" / "adapter_model.safetensors"))
    config = peft_model.config
    a = source["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"]
    b = source["base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"]
    assert np.array_equal(written["blk.1.attn_q.weight.lora_a"], a)
    assert np.array_equal(written["blk.1.attn_q.weight.lora_b"], _permute_rows(b, config.num_attention_heads))
    k = source["base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight"]
    assert np.array_equal(written["blk.0.attn_k.weight.lora_b"], _permute_rows(k, config.num_key_value_heads))
    down = source["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"]
    assert np.array_equal(written["blk.0.ffn_down.weight.lora_b"], down)
    # the permutation only reorders rows, within each head
    rows = np.arange(b.shape[0])[:, None].astype(np.float32)
    assert sorted(_permute_rows(rows, config.num_attention_heads)[:, 0].tolist()) == rows[:, 0].tolist()
