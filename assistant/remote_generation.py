"""Generation on another machine: any OpenAI-compatible server (vLLM serving the base with our LoRA adapter).

The dialogue manager builds the same prompt as for the local model and sends it as chat messages to
`<remote_url>/chat/completions` with `stream: true`, greedy decoding and the reply-length limit; the
pieces come back as server-sent events. A server that cannot be reached, answers with an error or
stops sending for `timeout_s` raises `GenerationUnavailable`: the turn then answers from the evidence
(or abstains), as it does when local generation fails.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx

from assistant.errors import AssistantError, ConfigError
from assistant.generation import ChatMessages

log = logging.getLogger(__name__)


class GenerationUnavailable(AssistantError):
    """The remote generation server did not answer in time or answered with an error."""


class RemoteGenerator:
    """Streams replies from an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, max_new_tokens: int = 160,
                 timeout_s: float = 60.0, temperature: float = 0.0, transport: httpx.BaseTransport | None = None):
        if not base_url or not model:
            raise ConfigError("the remote generator needs ASSISTANT_REMOTE_URL (e.g. http://gpu-box:8000/v1) and "
                              "ASSISTANT_REMOTE_MODEL (the model or adapter name the server knows)")
        self.base_url = base_url.rstrip("/")
        self.model_id = model
        self.adapter_id: str | None = model
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # connect quickly; between two pieces of one reply wait at most timeout_s
        self.client = httpx.Client(headers=headers, transport=transport,
                                   timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)))

    def stream(self, messages: ChatMessages, **params: Any) -> Iterator[str]:
        body = {"model": self.model_id, "messages": [dict(m) for m in messages], "stream": True,
                "max_tokens": int(params.get("max_new_tokens") or self.max_new_tokens),
                "temperature": float(params.get("temperature", self.temperature))}
        cancel = params.get("cancel")
        try:
            with self.client.stream("POST", f"{self.base_url}/chat/completions", json=body) as response:
                if response.status_code != 200:
                    detail = response.read()[:300].decode("utf-8", "replace")
                    raise GenerationUnavailable(f"the generation server answered HTTP {response.status_code}: {detail}")
                for line in response.iter_lines():
                    if cancel is not None and cancel.is_set():
                        return
                    if not line.startswith("data: ") or line.strip() == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        raise GenerationUnavailable(f"the generation server failed: {chunk['error'].get('message')}")
                    choices = chunk.get("choices") or [{}]
                    piece = (choices[0].get("delta") or {}).get("content")
                    if piece:
                        yield piece
        except httpx.TimeoutException as err:
            raise GenerationUnavailable(f"the generation server at {self.base_url} did not answer in time "
                                        f"({type(err).__name__})") from err
        except (httpx.HTTPError, ValueError) as err:
            raise GenerationUnavailable(f"the generation server at {self.base_url} failed: {err}") from err
