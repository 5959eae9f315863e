"""The remote generation backend against a second instance of our own server on 127.0.0.1 (OpenAI-compatible)."""

from __future__ import annotations

import time

import pytest

from assistant.bootstrap import build_dialogue_manager, open_generator
from assistant.dialogue.events import TurnView
from assistant.errors import ConfigError
from assistant.guards import redact_pii
from assistant.remote_generation import GenerationUnavailable, RemoteGenerator
from tests.ui.test_chat_server import free_port, serve

KEY = "k-remote"


@pytest.fixture
def remote(make_manager, settings):
    """Server B: our own server with a scripted model, holding an API key."""
    from tests.assistant.test_generation_worker import SlowGenerator

    slow = SlowGenerator(delay=0.0)
    configured = settings.model_copy(update={"api_keys": [KEY], "agent_keys": ["k-agent"]})
    for url, manager in serve(make_manager, configured, generator=slow):
        yield url, manager, slow


def test_a_turn_generated_by_the_remote_server(remote, settings):
    url, remote_manager, _ = remote
    configured = settings.model_copy(update={"generator": "remote", "remote_url": url + "v1",
                                             "remote_model": "support-assistant", "remote_api_key": KEY})
    generator = open_generator(configured)
    assert isinstance(generator, RemoteGenerator) and generator.model_id == "support-assistant"
    local = build_dialogue_manager(configured, generator=generator)
    view = TurnView.collect(local.respond(None, "How do I reset my password?", channel="web"))
    # server B received our prompt as its customer's message and streamed its checked reply back
    asked = [c for c in remote_manager.store.conversations(10) if c.channel == "api"]
    assert len(asked) == 1
    received = remote_manager.store.messages(asked[0].id)
    assert received[0].role == "user" and "How do I reset my password?" in received[0].content
    # B stores its reply with what its "customer" disclosed redacted: our prompt quotes the help center's e-mails
    assert redact_pii(view.final.check.generated)[0] == received[1].content
    assert local.store.messages(view.final.conversation_id)[-1].model_id == "support-assistant"


def test_a_slow_or_missing_server_falls_back_to_the_evidence(remote, settings):
    url, _, slow = remote
    slow.delay = 1.0  # one word a second: longer than the remote timeout below
    generator = RemoteGenerator(url + "v1", "support-assistant", api_key=KEY, timeout_s=0.5)
    manager = build_dialogue_manager(settings, generator=generator)
    started = time.perf_counter()
    final = TurnView.collect(manager.respond(None, "How do I reset my password?", channel="web")).final
    assert time.perf_counter() - started < 5
    assert "generation failed" in final.reason_detail and final.text
    gone = RemoteGenerator(f"http://127.0.0.1:{free_port()}/v1", "x", timeout_s=1)
    with pytest.raises(GenerationUnavailable, match="failed"):
        list(gone.stream([{"role": "user", "content": "hi"}]))
    wrong_key = RemoteGenerator(url + "v1", "support-assistant", api_key="nope")
    with pytest.raises(GenerationUnavailable, match="HTTP 401"):
        list(wrong_key.stream([{"role": "user", "content": "hi"}]))


def test_remote_needs_a_url_and_a_model(settings):
    with pytest.raises(ConfigError, match="ASSISTANT_REMOTE_URL"):
        open_generator(settings.model_copy(update={"generator": "remote"}))
