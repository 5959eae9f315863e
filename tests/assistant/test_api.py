"""The OpenAI-compatible API served for real on 127.0.0.1, used through the official `openai` package and raw HTTP."""

from __future__ import annotations

import time
from contextlib import contextmanager

import httpx
import pytest

from tests.ui.test_chat_server import serve

KEY = "k-api"


@contextmanager
def serving(make_manager, settings, **options):
    """A server on 127.0.0.1 for the block: (url, manager)."""
    running = serve(make_manager, settings, **options)
    try:
        yield next(running)
    finally:
        next(running, None)


@pytest.fixture
def served_api(make_manager, settings):
    yield from serve(make_manager, settings.model_copy(update={"agent_keys": ["k-agent"], "api_keys": [KEY]}))


@pytest.fixture
def client(served_api):
    from openai import OpenAI

    url, _ = served_api
    return OpenAI(base_url=url + "v1", api_key=KEY, max_retries=0, timeout=30)


def test_openai_client_without_streaming(client, served_api):
    _, manager = served_api
    reply = client.chat.completions.create(model="support-assistant",
                                           messages=[{"role": "user", "content": "How do I reset my password?"}])
    text = reply.choices[0].message.content
    extra = reply.model_extra["assistant"]
    assert text and reply.choices[0].finish_reason == "stop"
    assert extra["citations"] and extra["escalated"] is False and extra["ticket_id"] is None
    stored = manager.store.messages(extra["conversation_id"])
    assert [m.role for m in stored] == ["user", "assistant"] and stored[-1].content == text
    assert manager.store.conversation(extra["conversation_id"]).channel == "api"

    # the same conversation continues with its id; earlier messages in the request are not stored again
    again = client.chat.completions.create(
        model="support-assistant", extra_body={"conversation_id": extra["conversation_id"]},
        messages=[{"role": "user", "content": "How do I reset my password?"}, {"role": "assistant", "content": text},
                  {"role": "user", "content": "I want to talk to a human"}])
    assert again.model_extra["assistant"]["escalated"] is True and again.model_extra["assistant"]["ticket_id"]
    assert [m.role for m in manager.store.messages(extra["conversation_id"])] == ["user", "assistant"] * 2


def test_openai_client_streaming_shows_only_checked_text(client, served_api):
    _, manager = served_api
    stream = client.chat.completions.create(model="support-assistant", stream=True,
                                            messages=[{"role": "user", "content": "How do I reset my password?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    extra = last.model_extra["assistant"]
    stored = manager.store.messages(extra["conversation_id"])
    assert stored[-1].content == text  # what was streamed is exactly the checked reply that was logged
    assert extra["citations"]


def test_earlier_messages_seed_a_new_conversation_once(client, served_api):
    _, manager = served_api
    history = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"},
               {"role": "assistant", "content": "Hello! How can I help?"}]
    reply = client.chat.completions.create(model="support-assistant",
                                           messages=[*history, {"role": "user", "content": "How do I reset it?"}])
    stored = manager.store.messages(reply.model_extra["assistant"]["conversation_id"])
    assert [(m.role, m.content) for m in stored[:3]] == [("user", "hi"), ("assistant", "Hello! How can I help?"),
                                                          ("user", "How do I reset it?")]


def test_models_and_health(served_api):
    url, _ = served_api
    headers = {"Authorization": f"Bearer {KEY}"}
    models = httpx.get(url + "v1/models", headers=headers).json()
    assert {m["id"] for m in models["data"]} == {"support-assistant", "base"}
    assert httpx.get(url + "healthz").json()["status"] == "ok"
    assert httpx.get(url + "readyz").json() == {"status": "ready", "problems": []}


@pytest.mark.parametrize(("request_kwargs", "status", "code"), [
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "invalid_request"),
    ({"json": {"model": "support-assistant"}}, 400, "invalid_request"),
    ({"json": {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}}, 404, "model_not_found"),
    ({"json": {"messages": [{"role": "assistant", "content": "hi"}]}}, 400, "invalid_messages"),
    ({"json": {"messages": [{"role": "user", "content": "hi"}], "conversation_id": "bad id!"}}, 400,
     "invalid_conversation_id"),
    ({"json": {"messages": [{"role": "user", "content": "x" * 5000}]}}, 400, "invalid_message"),
    ({"content": b"{" + b" " * 300_000 + b"}", "headers": {"Content-Type": "application/json"}}, 413,
     "body_too_large"),
])
def test_bad_requests_get_clear_errors(served_api, request_kwargs, status, code):
    url, manager = served_api
    headers = {"Authorization": f"Bearer {KEY}", **request_kwargs.pop("headers", {})}
    response = httpx.post(url + "v1/chat/completions", headers=headers, timeout=30, **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert httpx.get(url + "healthz").status_code == 200  # the worker is still serving


def test_an_oversized_body_sent_in_chunks_is_refused_too(served_api):
    url, _ = served_api

    def chunks():
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(300):
            yield b"x" * 1000
        yield b'"}]}'

    response = httpx.post(url + "v1/chat/completions", content=chunks(), timeout=30,
                          headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


def test_keys_are_required_when_configured(served_api):
    from openai import AuthenticationError, OpenAI

    url, _ = served_api
    wrong = OpenAI(base_url=url + "v1", api_key="nope", max_retries=0)
    with pytest.raises(AuthenticationError):
        wrong.chat.completions.create(model="support-assistant", messages=[{"role": "user", "content": "hi"}])
    assert httpx.get(url + "v1/models").status_code == 401
    agent_key = httpx.get(url + "v1/models", headers={"Authorization": "Bearer k-agent"})
    assert agent_key.status_code == 401  # an agent key does not open the API


def test_a_client_that_goes_away_frees_the_model_and_the_server_serves_on(make_manager, settings):
    from tests.assistant.test_generation_worker import SlowGenerator

    slow = SlowGenerator(delay=0.3)  # echoes the question, one word per 0.3 s
    configured = settings.model_copy(update={"api_keys": [KEY], "agent_keys": ["k-agent"], "generation_slots": 1})
    with serving(make_manager, configured, generator=slow) as (url, _manager):
        headers = {"Authorization": f"Bearer {KEY}"}
        question = "How do I reset my password if the app says my email is unknown to Northwind?"
        with httpx.stream("POST", url + "v1/chat/completions", headers=headers, timeout=30,
                          json={"messages": [{"role": "user", "content": question}], "stream": True}) as response:
            assert response.status_code == 200
            first = next(response.iter_lines())
            assert first.startswith("data: ")
        # the client left after one chunk: the generation stops long before its 16 words would have taken
        deadline = time.time() + 3
        while httpx.get(url + "healthz").json()["generation"]["running"] and time.time() < deadline:
            time.sleep(0.05)
        assert httpx.get(url + "healthz").json()["generation"] == {"running": 0, "waiting": 0, "slots": 1}
        slow.delay = 0.0
        after = httpx.post(url + "v1/chat/completions", headers=headers, timeout=30,
                           json={"messages": [{"role": "user", "content": "How do I reset my password?"}]})
        assert after.status_code == 200 and after.json()["assistant"]["conversation_id"]


def test_cors_lets_only_configured_websites_call_the_api(make_manager, settings):
    configured = settings.model_copy(update={"cors_origins": ["https://www.example.com"]})
    with serving(make_manager, configured) as (url, _):
        preflight = {"Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization,content-type"}
        allowed = httpx.options(url + "v1/chat/completions", headers={"Origin": "https://www.example.com", **preflight})
        assert allowed.headers.get("access-control-allow-origin") == "https://www.example.com"
        other = httpx.options(url + "v1/chat/completions", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers


def test_the_database_going_away_and_coming_back(make_manager, settings, pg_url):
    """PostgreSQL drops every connection of the server (a restart), then cannot be reached at all for a while:
    clear 503s while it is gone, answers again when it is back, and no message lost or stored twice."""
    from sqlalchemy import create_engine, text

    from tests.ui.test_chat_server import free_port

    name = f"outage_{int(time.time() * 1000)}"
    url_with_name = f"{pg_url}&application_name={name}"
    configured = settings.model_copy(update={"api_keys": [KEY], "agent_keys": ["k-agent"],
                                             "database_url": url_with_name})
    on_postgres = lambda **kw: make_manager(database_url=url_with_name, **kw)  # noqa: E731
    with serving(on_postgres, configured) as (url, manager):
        headers = {"Authorization": f"Bearer {KEY}"}

        def ask(text: str, conversation_id: str | None = None) -> httpx.Response:
            body = {"messages": [{"role": "user", "content": text}], "conversation_id": conversation_id}
            return httpx.post(url + "v1/chat/completions", headers=headers, json=body, timeout=30)

        first = ask("How do I reset my password?")
        assert first.status_code == 200
        conversation_id = first.json()["assistant"]["conversation_id"]
        admin = create_engine(pg_url)
        with admin.begin() as conn:  # the server restarts: every connection of our app is cut
            cut = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                    "WHERE application_name = :name"), {"name": name}).scalar()
        admin.dispose()
        assert cut >= 1
        assert ask("and on the website?", conversation_id).status_code == 200  # stale connections replaced

        working = (manager.store.engine, manager.store._writer)
        gone = manager.store.__class__(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")
        manager.store.engine, manager.store._writer = gone.engine, gone._writer  # unreachable now
        down = ask("is anyone there?", conversation_id)
        assert down.status_code == 503 and "store" in down.json()["error"]["message"]
        assert httpx.get(url + "readyz").status_code == 503 and httpx.get(url + "healthz").status_code == 200
        manager.store.engine, manager.store._writer = working  # back
        assert ask("is anyone there?", conversation_id).status_code == 200
        sent = [m.content for m in manager.store.messages(conversation_id) if m.role == "user"]
        assert sent == ["How do I reset my password?", "and on the website?", "is anyone there?"]


def test_a_client_that_reads_slowly_does_not_hold_its_generation_slot(make_manager, settings):
    """The server's writes block, as uvicorn's do once a slow client's socket is full: the turn finishes anyway,
    is logged, and frees its slot for the next customer."""
    import asyncio
    import json

    from assistant.serving import build_server
    from tests.assistant.test_generation_worker import SlowGenerator

    slow = SlowGenerator(delay=0.05)
    manager = make_manager(reply="unused")
    manager.generator = slow
    app = build_server(settings.model_copy(update={"generation_slots": 1}), manager)
    body = json.dumps({"model": "support-assistant", "stream": True,
                       "messages": [{"role": "user", "content": "How do I reset my password?"}]}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"host", b"127.0.0.1")]}

    async def scenario() -> bool:
        request_sent, blocked = False, asyncio.Event()

        async def receive() -> dict:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client stays connected
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                blocked.set()
                await asyncio.Event().wait()  # this write never completes: the client does not read

        response = asyncio.create_task(app(scope, receive, send))
        await asyncio.wait_for(blocked.wait(), 30)
        finished, deadline = False, time.time() + 20
        while not finished and time.time() < deadline:
            await asyncio.sleep(0.05)
            conversations = manager.store.conversations(limit=1)
            roles = [m.role for m in manager.store.messages(conversations[0].id)] if conversations else []
            finished = roles == ["user", "assistant"] and manager.generator.queue.load()["running"] == 0
        response.cancel()
        return finished

    finished = asyncio.run(scenario())
    assert finished, "the turn waited for the client to read: its generation slot stayed taken"
