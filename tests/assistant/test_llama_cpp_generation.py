"""The llama.cpp backend with the real embedded GGUF: the same tokens as the transformers path, adapters as GGUF
LoRA, concurrent contexts, cancel, and clear errors."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from assistant.errors import ConfigError
from tests.helpers import unavailable

pytestmark = pytest.mark.slow

PROMPTS = [
    [{"role": "system", "content": "You are Northwind's support assistant. Answer from the evidence only."},
     {"role": "user", "content": "Evidence:\n> A reset link is valid for 60 minutes and can be used once.\n\n"
                                 "Question: how long is the reset link valid?"}],
    [{"role": "system", "content": "You are Northwind's support assistant. Answer from the evidence only."},
     {"role": "user", "content": "Evidence:\n> You can return most items within 30 days of delivery.\n\n"
                                 "Question: what's the return window?"}],
    [{"role": "user", "content": "Write one sentence about doorbells."}],
]
TOKENS = 24


@pytest.fixture(scope="module")
def real_settings(real_data_dir: Path):
    from assistant.config import load_settings

    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        unavailable("llama-cpp-python (the llamacpp extra)")
    return load_settings(data_dir=real_data_dir, generator="llama_cpp", threads=2, max_new_tokens=TOKENS)


def greedy(generator, messages) -> list[int]:
    text = "".join(generator.stream(messages, max_new_tokens=TOKENS))
    return generator.tokenizer.encode(text, add_special_tokens=False)


def agreement(a: list[int], b: list[int]) -> int:
    """How many leading tokens two greedy replies share."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


@pytest.fixture(scope="module")
def backends(real_settings):
    from assistant.bootstrap import open_generator

    fast = {name: open_generator(real_settings, name) for name in ("base", "shipped")}
    exact = {name: open_generator(real_settings.model_copy(update={"generator": "local"}), name)
             for name in ("base", "shipped")}
    return fast, exact


def test_llama_cpp_writes_the_tokens_fp32_transformers_writes(backends):
    """Same weights (the GGUF is what the fp32 model was dequantised from), same token choice; llama.cpp rounds
    activations to 8 bits inside its dot products and keeps its cache in fp16, so a near-tie may flip and the
    replies part from there (benchmarks/generation.py compares perplexities): the first 8 greedy tokens agree."""
    fast, exact = backends
    for name in ("base", "shipped"):  # the shipped adapter, converted to a GGUF LoRA, works the same way
        shared = [agreement(greedy(fast[name], m), greedy(exact[name], m)) for m in PROMPTS]
        print(name, "leading tokens shared:", shared)
        assert min(shared) >= 8, (name, shared)
    # and the adapter changes what the model writes
    assert [greedy(fast["base"], m) for m in PROMPTS] != [greedy(fast["shipped"], m) for m in PROMPTS]


def test_concurrent_turns_get_their_own_replies_and_cancel_stops_one(backends):
    fast, _ = backends
    generator = fast["shipped"]
    alone = ["".join(generator.stream(m)) for m in PROMPTS]
    together: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, "".join(generator.stream(PROMPTS[i]))))
               for i in range(len(PROMPTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)  # a loaded machine decodes three streams slowly
    assert [together[i] for i in range(len(PROMPTS))] == alone
    cancel = threading.Event()
    pieces = []
    for piece in generator.stream(PROMPTS[2], max_new_tokens=200, min_new_tokens=200, cancel=cancel):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert len(pieces) == 3


def test_a_lora_that_llama_cpp_cannot_run_is_refused_with_the_reason(tmp_path: Path, real_settings):
    import numpy as np
    from safetensors.numpy import save_file

    from assistant.llama_cpp_generation import gguf_lora
    from assistant.models import resolve_model_dir

    adapter = tmp_path / "odd"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"lora_alpha": 16, "r": 8}))
    save_file({"base_model.model.lm_head.lora_A.weight": np.zeros((8, 576), np.float32)},
              str(adapter / "adapter_model.safetensors"))
    with pytest.raises(ConfigError, match="lm_head.*cannot run on llama.cpp|not in a model layer"):
        gguf_lora(adapter, resolve_model_dir(real_settings), tmp_path / "gguf")
    with pytest.raises(ConfigError, match="ASSISTANT_GGUF"):
        from assistant.bootstrap import open_generator

        open_generator(real_settings.model_copy(update={"gguf": tmp_path / "missing.gguf"}), "base")


def test_the_gguf_is_requantised_to_q8_0_once_and_as_is_runs_the_embedded_file(backends, real_settings):
    from assistant.bootstrap import open_generator
    from assistant.models import default_gguf_path

    fast, _ = backends
    served = fast["base"].gguf_path
    assert served.parent == real_settings.data_dir / "gguf" and "q8_0" in served.name
    made = served.stat().st_mtime_ns
    again = open_generator(real_settings, "base")
    assert again.gguf_path == served and served.stat().st_mtime_ns == made  # converted once, then reused
    assert not list(served.parent.glob("*.part"))
    as_is = open_generator(real_settings.model_copy(update={"gguf_type": "as_is"}), "base")
    assert as_is.gguf_path == default_gguf_path()
    assert agreement(greedy(as_is, PROMPTS[0]), greedy(again, PROMPTS[0])) >= 8


def test_a_file_llama_cpp_cannot_requantise_is_one_clear_error_and_leaves_nothing(tmp_path: Path, real_settings):
    from assistant.llama_cpp_generation import requantized

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really")
    with pytest.raises(ConfigError, match="could not requantise .*ASSISTANT_GGUF_TYPE=as_is"):
        requantized(broken, "q8_0", tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*"))  # no partial file left to be mistaken for a model


def test_without_llama_cpp_python_the_error_names_what_to_install(monkeypatch):
    import sys

    from assistant.llama_cpp_generation import _llama_cpp

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    with pytest.raises(ConfigError, match="needs llama-cpp-python: .*llamacpp"):
        _llama_cpp()
