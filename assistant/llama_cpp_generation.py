"""The CPU fast path: the model run by llama.cpp (llama-cpp-python), the adapter applied as a GGUF LoRA.

Select it with `ASSISTANT_GENERATOR=llama_cpp` (install the `llamacpp` extra). The base is a GGUF
file: the embedded model's own (the weights the transformers path dequantises) or `ASSISTANT_GGUF`.
A peft adapter is converted once to a GGUF LoRA under `<data dir>/gguf/` and applied by llama.cpp
at full precision on top of the base, so adapters keep working and switching them is a reload.

Prompts are rendered by `assistant.prompts.render_within` with the model folder's tokenizer, the
ids the transformers path feeds, and the reply is decoded with that tokenizer too, so both backends
see and write the same text. Each generation slot has its own llama.cpp context, and a context
keeps the longest prompt prefix it has already computed (the system message) for its next request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'support-assistant[llamacpp]' (llama-cpp-python compiles for a few minutes)"
GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
              "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
"""peft target module -> llama.cpp tensor name of a Llama block."""


def _permute_rows(rows: Any, heads: int) -> Any:
    """GGUF stores a Llama's q/k projections with each head's rotary halves interleaved (as llama.cpp's converter
    writes them): the same row order applies to a LoRA's B matrix, whose rows are the projection's outputs."""
    return rows.reshape(heads, 2, rows.shape[0] // heads // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def lora_to_gguf(adapter_dir: Path, base_config: dict[str, Any], target: Path) -> Path:
    """Write a peft LoRA adapter (safetensors) as a llama.cpp GGUF LoRA file at `target`."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    heads = int(base_config["num_attention_heads"])
    kv_heads = int(base_config.get("num_key_value_heads") or heads)
    pairs: dict[tuple[int, str], dict[str, Any]] = {}
    for name, value in tensors.items():
        parts = name.split(".")
        try:
            layer = int(parts[parts.index("layers") + 1])
        except (ValueError, IndexError) as err:
            raise ConfigError(f"{adapter_dir}: tensor {name} is not in a model layer; only LoRA on the "
                              "attention and MLP projections can run on llama.cpp") from err
        module = next((p for p in parts if p in GGUF_NAMES), None)
        side = "a" if ".lora_A." in name else "b" if ".lora_B." in name else None
        if module is None or side is None:
            raise ConfigError(f"{adapter_dir}: tensor {name} is not a LoRA A/B matrix of "
                              f"{', '.join(GGUF_NAMES)}; it cannot run on llama.cpp")
        pairs.setdefault((layer, module), {})[side] = value.astype(np.float32)
    writer = gguf.GGUFWriter(str(target.with_suffix(".part")), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    for (layer, module), pair in sorted(pairs.items()):
        if set(pair) != {"a", "b"}:
            raise ConfigError(f"{adapter_dir}: layer {layer} {module} lacks its LoRA {'A' if 'a' not in pair else 'B'}")
        b = pair["b"]
        if module == "q_proj":
            b = _permute_rows(b, heads)
        elif module == "k_proj":
            b = _permute_rows(b, kv_heads)
        stem = f"blk.{layer}.{GGUF_NAMES[module]}.weight"
        writer.add_tensor(f"{stem}.lora_a", np.ascontiguousarray(pair["a"]))
        writer.add_tensor(f"{stem}.lora_b", np.ascontiguousarray(b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    target.with_suffix(".part").replace(target)
    return target


def gguf_lora(adapter_dir: Path, base_dir: Path, cache_dir: Path) -> Path:
    """The adapter's GGUF LoRA, converted once per adapter content and kept in `cache_dir`."""
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"{adapter_dir} has no adapter_model.safetensors: only peft LoRA adapters run on llama.cpp")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    target = cache_dir / f"{adapter_dir.name}-{digest}.gguf"
    if not target.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        base_config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
        lora_to_gguf(adapter_dir, base_config, target)
        log.info("converted adapter %s to %s", adapter_dir, target)
    return target


def _llama_cpp() -> Any:
    """The llama_cpp module, or a clear error naming what to install."""
    try:
        import llama_cpp
    except ImportError as err:
        raise ConfigError(f"ASSISTANT_GENERATOR=llama_cpp needs llama-cpp-python: {INSTALL_HINT}") from err
    return llama_cpp


_LOADING = threading.Lock()


def load_llama(model_path: Path, **options: Any) -> Any:
    """A `llama_cpp.Llama` with llama.cpp's extra weight buffers off (`use_extra_bufts`, which `Llama` does not
    expose): on a CPU with AMX, llama-cpp-python 0.3.36 puts Q4_1/Q8_0 weights in its AMX buffer, and the AMX
    matrix multiplication crashed the process (SIGSEGV in `ggml_backend_amx_mul_mat`) on the development
    machine; the plain CPU kernels (AVX-512 VNNI there) run the same weights."""
    _llama_cpp()
    from llama_cpp import Llama

    with _without_extra_buffers():
        return Llama(model_path=str(model_path), **options)


@contextmanager
def _without_extra_buffers() -> Iterator[None]:
    import llama_cpp.llama_cpp as native

    with _LOADING:  # the defaults are swapped for the load: one load at a time
        defaults = native.llama_model_default_params

        def params() -> Any:
            value = defaults()
            value.use_extra_bufts = False
            return value

        native.llama_model_default_params = params
        try:
            yield
        finally:
            native.llama_model_default_params = defaults


QUANT_TYPES = {"q8_0": 7}
"""llama.cpp's file types (`LLAMA_FTYPE_MOSTLY_*`) a GGUF can be requantised to."""


def requantized(source: Path, kind: str, cache_dir: Path) -> Path:
    """`source` requantised to `kind` by llama.cpp, once per source content, kept in `cache_dir`.

    The embedded GGUF is Q4_1; Q8_0 holds those same weights to within half a Q8_0 step (a 16-level block is
    re-read by a 255-level one) and is the type llama.cpp's fast prompt kernels (llamafile's sgemm) cover."""
    llama_cpp = _llama_cpp()
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]
    target = cache_dir / f"{Path(source).stem}-{kind}-{digest}.gguf"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[kind]
    params.allow_requantize = True
    log.info("requantising %s to %s in %s (once)", Path(source).name, kind, cache_dir)
    failed = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
    if failed or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise ConfigError(f"llama.cpp could not requantise {source} to {kind} (code {failed}): set "
                          "ASSISTANT_GGUF_TYPE=as_is to run the file unchanged")
    partial.replace(target)
    return target


class LlamaCppGenerator:
    """A GGUF model (+ optional GGUF LoRA) on llama.cpp, streamed token by token; greedy unless a temperature is set."""

    device = "cpu"  # for the serving queue: one slot per core, each context with its share of the threads

    def __init__(
        self,
        gguf_path: Path,
        tokenizer_dir: Path,
        lora_path: Path | None = None,
        *,
        model_id: str,
        adapter_id: str | None = None,
        threads: int = 1,
        context_tokens: int = 4096,
        max_new_tokens: int = 200,
        timeout_s: float = 60.0,
        temperature: float = 0.0,
        repetition_penalty: float = 1.0,
    ) -> None:
        _llama_cpp()
        from transformers import AutoTokenizer

        if not Path(gguf_path).is_file():
            raise ConfigError(f"GGUF model file {gguf_path} does not exist: set ASSISTANT_GGUF to the base "
                              "model's GGUF")
        self.gguf_path, self.lora_path = Path(gguf_path), lora_path
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        self.model_id, self.adapter_id = model_id, adapter_id
        self.threads, self.context_tokens = threads, context_tokens
        self.max_new_tokens, self.timeout_s = max_new_tokens, timeout_s
        self.temperature, self.repetition_penalty = temperature, repetition_penalty
        self.end_ids = {self.tokenizer.eos_token_id}
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle.put(self._new_context())  # load now: a bad file fails at start, not on the first customer
        log.info("loaded %s on llama.cpp (adapter %s, %d thread(s) per context)", self.gguf_path.name, adapter_id,
                 threads)

    def _new_context(self) -> Any:
        # The repetition penalty reads the whole context, as transformers' does (llama.cpp's default is 64 tokens).
        # Flash attention: the prompt's attention in one fused kernel (a 300-token prompt on one thread: 2.7 ms a
        # token against 3.3 without it).
        llm = load_llama(self.gguf_path, lora_path=str(self.lora_path) if self.lora_path else None,
                         n_ctx=self.context_tokens, n_threads=self.threads, n_threads_batch=self.threads,
                         last_n_tokens_size=self.context_tokens, flash_attn=True, verbose=False)
        self.end_ids.add(llm.token_eos())
        return llm

    def _context(self) -> Any:
        """An idle context, or a new one (the serving queue bounds how many run at once)."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._new_context()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def stream(self, messages: Any, **params: Any) -> Iterator[str]:
        """Yield decoded text pieces until the end token, `max_new_tokens`, the timeout or `cancel`."""
        from assistant.prompts import render_within

        max_new_tokens = int(params.get("max_new_tokens") or self.max_new_tokens)
        ids = render_within(self.tokenizer, list(messages), self.context_tokens - max_new_tokens)
        cancel: threading.Event | None = params.get("cancel")
        llm = self._context()
        started, produced, text = time.monotonic(), [], ""
        try:
            least = int(params.get("min_new_tokens") or 0)  # benchmarks force equal lengths
            for token in self._tokens(llm, ids, least=least,
                                      temperature=float(params.get("temperature", self.temperature)),
                                      penalty=float(params.get("repetition_penalty", self.repetition_penalty))):
                if token in self.end_ids or (cancel is not None and cancel.is_set()):
                    break
                produced.append(token)
                decoded = self.tokenizer.decode(produced, skip_special_tokens=True)
                if not decoded.endswith("\ufffd") and len(decoded) > len(text):  # a whole character at least
                    piece, text = decoded[len(text):], decoded
                    yield piece
                if len(produced) >= max_new_tokens or time.monotonic() - started > self.timeout_s:
                    break
        finally:
            self._idle.put(llm)

    def _tokens(self, llm: Any, ids: list[int], *, least: int, temperature: float, penalty: float) -> Iterator[int]:
        """The next token, forever: llama.cpp computes the logits; choosing from them follows transformers exactly
        (repetition penalty over the prompt and the reply, end tokens barred before `least` tokens, greedy unless
        a temperature is set), so both backends write the same reply."""
        import llama_cpp
        import numpy as np

        cached = llm.input_ids[: llm.n_tokens].tolist()
        reuse = next((i for i, (a, b) in enumerate(zip(cached, ids[:-1], strict=False)) if a != b),
                     min(len(cached), len(ids) - 1))
        llm.n_tokens = reuse  # the context keeps the prompt prefix it already computed (the system message)
        llm.eval(ids[reuse:])
        vocab = llm.n_vocab()
        seen = np.zeros(vocab, dtype=bool)
        seen[ids] = True
        ends = [t for t in self.end_ids if 0 <= t < vocab]
        rng = np.random.default_rng()
        count = 0
        while True:
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocab,)).copy()
            if penalty != 1.0:
                hit = logits[seen]
                logits[seen] = np.where(hit > 0, hit / penalty, hit * penalty)
            if count < least:
                logits[ends] = -np.inf
            token = _sample(logits / temperature, rng) if temperature > 0 else int(np.argmax(logits))
            yield token
            count += 1
            seen[token] = True
            llm.eval([token])


def _sample(logits: Any, rng: Any, top_p: float = 0.9) -> int:
    """A token drawn from the softmax of `logits`, within the smallest set holding `top_p` of the mass."""
    import numpy as np

    order = np.argsort(-logits)
    probs = np.exp(logits[order] - logits[order[0]])
    probs /= probs.sum()
    keep = int(np.searchsorted(np.cumsum(probs), top_p)) + 1
    return int(order[rng.choice(keep, p=probs[:keep] / probs[:keep].sum())])
