"""Reply generators behind one Protocol: local transformers (GPU when present) and a scripted fake.

`stream(messages, **params)` yields text pieces as they are produced; the dialogue manager
decides what to do with them.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

ChatMessages = Sequence[dict[str, str]]


class Generator(Protocol):
    """Streams a reply to chat messages."""

    model_id: str
    adapter_id: str | None

    def stream(self, messages: ChatMessages, **params: Any) -> Iterator[str]: ...


def pick_device(preference: str = "auto") -> str:
    """`cuda` when asked or available under `auto`, else `cpu`."""
    import torch

    if preference == "cuda" and not torch.cuda.is_available():
        from assistant.errors import ConfigError

        raise ConfigError("ASSISTANT_DEVICE=cuda but no CUDA device is available: use auto or cpu")
    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return preference


def cpu_threads() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class TransformersGenerator:
    """A local causal LM (+ optional peft adapter), streamed with transformers' TextIteratorStreamer."""

    def __init__(
        self,
        model_dir: Path,
        adapter_dir: Path | None = None,
        *,
        device: str = "auto",
        threads: int | None = None,
        max_new_tokens: int = 200,
        timeout_s: float = 60.0,
        temperature: float = 0.0,
        repetition_penalty: float = 1.0,
        prefix_cache: bool = True,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = pick_device(device)
        if self.device == "cpu":
            torch.set_num_threads(threads or cpu_threads())
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32  # bf16 is slower on most CPUs
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(self.device)
        if adapter_dir is not None:
            from assistant.models import load_adapter

            model = load_adapter(model, adapter_dir, Path(model_dir).name)
        self.model = model.eval()
        self.model_id = Path(model_dir).name
        self.adapter_id = Path(adapter_dir).name if adapter_dir else None
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.repetition_penalty = repetition_penalty
        self.context_tokens = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.prefix_cache = PrefixCache(self.model, self.device) if prefix_cache else None
        log.info("loaded model=%s adapter=%s device=%s", self.model_id, self.adapter_id, self.device)

    def _fit(self, messages: list[dict[str, str]], budget: int) -> Any:
        """Tokenised prompt within `budget` tokens: the oldest turns go first, the system message stays.

        When the prompt starts with the system message, the model's cache of that prefix comes along as
        `past_key_values` (a private copy), so only the rest of the prompt is computed.
        """
        import torch

        from assistant.prompts import render_prefix, render_within  # the renderer training uses too

        ids = render_within(self.tokenizer, messages, budget)
        input_ids = torch.tensor([ids], device=self.device)
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if self.prefix_cache is not None and (cache := self.prefix_cache.seed(render_prefix(self.tokenizer, messages),
                                                                               ids)) is not None:
            inputs["past_key_values"] = cache
        return inputs

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def stream(self, messages: ChatMessages, **params: Any) -> Iterator[str]:
        """Yield decoded text pieces until the end token, `max_new_tokens` or the timeout."""
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        max_new_tokens = int(params.get("max_new_tokens") or self.max_new_tokens)
        temperature = float(params.get("temperature", self.temperature))
        inputs = self._fit(list(messages), self.context_tokens - max_new_tokens)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=self.timeout_s + 5
        )
        kwargs: dict[str, Any] = dict(
            **inputs,
            streamer=streamer,
            max_new_tokens=max_new_tokens,
            max_time=self.timeout_s,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            do_sample=temperature > 0,
            repetition_penalty=float(params.get("repetition_penalty", self.repetition_penalty)),
        )
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=0.9)
        if params.get("min_new_tokens"):  # benchmarks force equal lengths
            kwargs["min_new_tokens"] = int(params["min_new_tokens"])
        errors: list[BaseException] = []
        stop = threading.Event()
        criteria = [_StopWhenSet(stop)]
        if params.get("cancel") is not None:  # the client went away (set by the API's request handler)
            criteria.append(_StopWhenSet(params["cancel"]))
        kwargs["stopping_criteria"] = StoppingCriteriaList(criteria)

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as err:  # surfaced in the caller's thread below
                errors.append(err)
                streamer.end()

        # No lock: each call has its own inputs and cache, and the weights are only read (inference mode), so
        # calls may overlap; how many run at once is the serving queue's choice (assistant/generation_worker.py).
        worker = threading.Thread(target=run, name="generate", daemon=True)
        worker.start()
        try:
            yield from (piece for piece in streamer if piece)
        finally:  # the caller may stop reading early (the check ended the draft): stop the model too
            stop.set()
            worker.join()
        if errors:
            raise errors[0]


class PrefixCache:
    """The model's key/value cache of the fixed system prefix, computed once and copied into each request.

    Every prompt starts with the same system message, so its keys and values are the same for every
    turn: computing them once takes them off each turn's first token (prefix caching). A request whose
    prompt does not start with the cached prefix gets no cache; a new prefix replaces the old one.
    """

    def __init__(self, model: Any, device: str) -> None:
        self.model, self.device = model, device
        self._ids: list[int] = []
        self._cache: Any = None
        self._lock = threading.Lock()

    def seed(self, prefix: list[int], ids: list[int]) -> Any | None:
        """A private copy of the cache of `prefix` when `ids` start with it and go on after it, else None."""
        import copy

        import torch
        from transformers import DynamicCache

        if not prefix or len(prefix) >= len(ids) or ids[: len(prefix)] != prefix:
            return None
        with self._lock, torch.inference_mode():
            if self._ids != prefix:
                cache = DynamicCache()
                self.model(input_ids=torch.tensor([prefix], device=self.device), past_key_values=cache, use_cache=True)
                self._ids, self._cache = list(prefix), cache
            return copy.deepcopy(self._cache)


class _StopWhenSet:
    """A stopping criterion that ends generation once its event is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def echo_evidence(messages: ChatMessages) -> str:
    """The reply a faithful model would write: the first two evidence lines of the prompt (a scripted reply for
    tests and benchmarks of everything around generation)."""
    lines = [line[2:] for line in messages[-1]["content"].splitlines() if line.startswith("> ")]
    return " ".join(lines[:2]) or "I don't know."


class ScriptedGenerator:
    """A deterministic generator for tests: replies with fixed text (or a function of the messages)."""

    def __init__(self, reply: str | Callable[[ChatMessages], str] = "Thanks for asking.", model_id: str = "scripted"):
        self.reply = reply
        self.model_id = model_id
        self.adapter_id: str | None = None
        self.calls: list[list[dict[str, str]]] = []

    def stream(self, messages: ChatMessages, **params: Any) -> Iterator[str]:
        self.calls.append([dict(m) for m in messages])
        text = self.reply(messages) if callable(self.reply) else self.reply
        yield from re.findall(r"\S+\s*", text)
