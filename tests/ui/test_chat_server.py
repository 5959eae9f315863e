"""The web chat served for real on 127.0.0.1 and driven through gradio_client."""

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from assistant.errors import ConfigError
from assistant.serving import build_server, check_exposure


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(make_manager, settings):
    yield from serve(make_manager, settings)


@pytest.fixture
def served_with_keys(make_manager, settings):
    yield from serve(make_manager, settings.model_copy(update={"agent_keys": ["k-agent"], "api_keys": ["k-api"]}))


def serve(make_manager, settings, generator=None):
    manager = make_manager(reply="Open the Northwind Home app and tap Forgot password on the sign-in screen [1].")
    if generator is not None:
        manager.generator = generator
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_server(settings, manager), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    yield f"http://127.0.0.1:{port}/", manager
    server.should_exit = True
    thread.join(timeout=10)


def messages(chat):
    """The chat's messages, whether the handler returned them as a list or as a Chatbot update."""
    if isinstance(chat, dict):
        return chat["value"]
    return chat.value if hasattr(chat, "value") else chat


def test_healthz(served):
    url, _ = served
    body = httpx.get(url + "healthz").json()
    assert body["status"] == "ok" and body["model"] == "scripted" and body["index_documents"] >= 40


def test_chat_streams_cites_stores_feedback_and_escalates(served):
    from gradio_client import Client

    url, manager = served
    client = Client(url, verbose=False)
    # session state lives on the server
    job = client.submit("How do I reset my Northwind password?", [], api_name="/chat")
    outputs = list(job)
    assert len(outputs) >= 3  # streamed: several partial updates before the final one
    box, chat = job.result()
    assert box == ""
    chat = messages(chat)
    answer = chat[-1]["content"]
    answer_text = answer if isinstance(answer, str) else answer[0]["text"] if isinstance(answer, list) else str(answer)
    assert "Forgot password" in answer_text and "Sources</span>" in answer_text
    partial = messages(outputs[1][1])[-1]["content"]
    assert len(str(partial)) < len(str(answer))
    [conversation] = manager.store.conversations()
    assert conversation.channel == "web"
    rows = manager.store.messages(conversation.id)
    assert [m.role for m in rows] == ["user", "assistant"]
    assert f"[{rows[1].citations[0]['title']}](https://help.northwind.example/" in answer_text

    assert client.predict(conversation.id, rows[1].id, -1, api_name="/feedback") == "ok"
    assert [f.rating for f in manager.store.feedback(rows[1].id)] == [-1]

    chat = messages(client.predict(chat, api_name="/talk_to_human"))
    [ticket] = manager.store.escalations(conversation.id)
    assert f"#{ticket.id}" in str(chat[-1]["content"])


def test_invalid_message_keeps_the_conversation(served):
    from gradio_client import Client

    url, manager = served
    client = Client(url, verbose=False)
    box, chat = client.predict("   ", [], api_name="/chat")
    assert box == "   " and messages(chat) == [] and manager.store.conversations() == []


def test_public_address_needs_both_kinds_of_key(settings):
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0: ASSISTANT_API_KEYS and ASSISTANT_AGENT_KEYS"):
        check_exposure(settings.model_copy(update={"host": "0.0.0.0"}))
    check_exposure(settings.model_copy(update={"host": "0.0.0.0", "api_keys": ["a"], "agent_keys": ["b"]}))
    check_exposure(settings.model_copy(update={"host": "localhost"}))


def test_blank_keys_do_not_count_as_keys_for_a_public_address(settings):
    with pytest.raises(ConfigError, match="ASSISTANT_API_KEYS not set"):
        check_exposure(settings.model_copy(update={"host": "0.0.0.0", "api_keys": [""], "agent_keys": ["b"]}))
    with pytest.raises(ConfigError, match="ASSISTANT_AGENT_KEYS not set"):
        check_exposure(settings.model_copy(update={"host": "0.0.0.0", "api_keys": ["a"], "agent_keys": [" \t"]}))


def test_agent_console_takeover_reply_seen_by_customer(served_with_keys):
    from gradio_client import Client

    url, manager = served_with_keys
    customer = Client(url, verbose=False)
    _, chat = customer.predict("I want to talk to a human", [], api_name="/chat")
    chat = messages(chat)
    assert "ticket #" in str(chat[-1]["content"])
    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises its own error types for a refused login
        Client(url + "agent/", auth=("ana", "wrong-key"), verbose=False)
    agent = Client(url + "agent/", auth=("ana", "k-agent"), verbose=False)
    queue = agent.predict(api_name="/queue")
    rows = queue["data"] if isinstance(queue, dict) else queue
    ticket = int(rows[0][0])
    transcript, _ = agent.predict(ticket, api_name="/take_over")
    assert "Customer" in transcript and "escalate" in transcript
    _, chat = customer.predict("Hello, are you there?", chat, api_name="/chat")
    chat = messages(chat)
    assert "Hello, are you there?" in str(chat[-1]["content"])  # the bot stayed quiet
    agent.predict(ticket, "Hi, this is Ana. I can help with that.", api_name="/reply")
    chat = messages(customer.predict(chat, api_name="/poll"))
    assert "Ana from our support team" in str(chat[-2]["content"]) and "joined" in str(chat[-2]["content"])
    assert "Ana from our support team" in str(chat[-1]["content"]) and "Hi, this is Ana." in str(chat[-1]["content"])
    agent.predict(ticket, api_name="/resolve")
    assert manager.store.ticket_status(ticket) == "resolved"
    assert [e.agent for e in manager.store.ticket_events(ticket)][1:] == ["ana", "ana"]


def test_agent_console_needs_a_key_but_the_chat_does_not(served_with_keys):
    url, _ = served_with_keys
    assert httpx.get(url + "agent/config").status_code in (401, 403)
    assert httpx.get(url + "config").status_code == 200


CONSOLE_ENDPOINTS = ("take_over", "hand_back", "/transcript", "/resolve", "/reply", "/queue")


def test_agent_console_shows_nothing_of_itself_before_sign_in(served_with_keys):
    url, _ = served_with_keys
    with httpx.Client(base_url=url + "agent/", timeout=5) as visitor:
        page = visitor.get("")
        assert page.status_code == 200 and '"auth_required":true' in page.text  # the sign-in form only
        assert not [name for name in CONSOLE_ENDPOINTS if name in page.text]
        assert "agent console" not in page.text
        for path in ("config", "gradio_api/info", "gradio_api/info?all_endpoints=true", "gradio_api/runs",
                     "gradio_api/openapi.json", "openapi.json", "manifest.json", "gradio_api/startup-events",
                     "gradio_api/app_id", "gradio_api/run-history/records", "monitoring", "gradio_api/mcp/schema"):
            answer = visitor.get(path)
            assert answer.status_code in (401, 404), path
            assert not [name for name in CONSOLE_ENDPOINTS if name in answer.text], path
        assert visitor.post("login", data={"username": "ana", "password": "wrong"}).status_code == 400
        assert visitor.get("assets/" + page.text.split("./assets/", 1)[1].split('"', 1)[0]).status_code == 200

        assert visitor.post("login", data={"username": "ana", "password": "k-agent"}).status_code == 200
        info = visitor.get("gradio_api/info").json()
        assert {"/take_over", "/hand_back", "/transcript", "/resolve", "/reply"} <= set(info["named_endpoints"])
        assert "take_over" in visitor.get("").text  # signed in: the page is the console itself
    assert httpx.get(url + "config").status_code == 200  # the customer chat stays public


def test_chat_restores_a_stored_conversation(served, make_manager):
    from ui.chat import build_chat_app

    url, manager = served
    events = list(manager.respond("resume-1", "How do I reset my password?"))
    app = build_chat_app(manager, manager.settings)
    restore = next(fn.fn for fn in app.fns.values() if getattr(fn.fn, "__name__", "") == "restore")
    manager.record_feedback("resume-1", events[-1].message_id, 1)
    chat, conversation_id, shown = restore("resume-1")
    assert conversation_id == "resume-1" and [m["role"] for m in messages(chat)] == ["user", "assistant"]
    assert "Sources</span>" in str(messages(chat)[-1]["content"]) and shown.ids == [None, events[-1].message_id]
    assert shown.last_message == shown.ids[-1] and chat.feedback_value == ["Like"]  # the thumbs stay lit
    unknown = restore("unknown-id")
    assert messages(unknown[0]) == [] and unknown[1] is None


@pytest.mark.parametrize("bad", ["x" * 65, "abc\x00def"])
def test_chat_warns_about_a_bad_conversation_id_without_a_traceback(make_manager, monkeypatch, bad):
    import gradio as gr

    from ui.chat import Shown, build_chat_app

    manager = make_manager()
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda message, *args, **kwargs: warnings.append(message))
    app = build_chat_app(manager, manager.settings)
    handlers = {getattr(fn.fn, "__name__", ""): fn.fn for fn in app.fns.values()}
    outputs = list(handlers["send"]("How do I reset my password?", [], bad, Shown()))
    assert len(outputs) == 1 and outputs[0][0] == "How do I reset my password?"  # the text stays to send again
    assert messages(outputs[0][1]) == [] and outputs[0][2] == bad
    assert warnings == ["A conversation id is 1 to 64 characters of letters, digits, '_' and '-'"]
    restored = handlers["restore"](bad)  # a tampered id in the browser: start afresh
    assert messages(restored[0]) == [] and restored[1] is None
    assert manager.store.conversations() == []


def test_feedback_api_with_a_bad_conversation_id_answers_with_the_reason(served):
    from gradio_client import Client

    url, _ = served
    with pytest.raises(Exception, match="a conversation id is 1 to 64 characters"):  # noqa: B017 - gradio_client's own error
        Client(url, verbose=False).predict("x" * 65, 1, 1, api_name="/feedback")


def test_sources_are_numbered_for_the_customer():
    from ui.render import answer_markdown

    cite = {"n": 3, "title": "Reset your password", "source": "https://help.example/reset", "snippet": "Tap Forgot."}
    one = answer_markdown("Tap Forgot password? [3]", [cite])
    assert "[3]" not in one and "1. [Reset your password]" in one and "3." not in one
    other = {**cite, "n": 2, "title": "Locked account"}
    two = answer_markdown("Tap Forgot password? [3] Wait 30 minutes [2]. Also [5].", [cite, other])
    assert two.startswith("Tap Forgot password? [1] Wait 30 minutes [2]. Also.")
    assert "1. [Reset your password]" in two and "2. [Locked account]" in two
