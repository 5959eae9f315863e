"""The HTTP API (FastAPI): OpenAI-compatible `/v1/chat/completions` and `/v1/models`, `/healthz`, `/readyz`.

The chat UI is mounted on this app by `assistant serve`, never imported here. A completion is one turn
of the dialogue manager on channel `api`; only checked text is streamed, exactly as the web chat shows
it. Access, conversation ids and the extra `assistant` field follow ARCHITECTURE.md: a key from
`ASSISTANT_API_KEYS` as `Authorization: Bearer`, or loopback clients only when none is configured.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from assistant.config import Settings
from assistant.dialogue import DialogueManager
from assistant.dialogue.events import Escalated, Event, Final, Token
from assistant.errors import InvalidMessage, RateLimited, StoreUnavailable
from assistant.generation_worker import CANCEL
from assistant.keys import key_matches
from assistant.store.tables import check_conversation_id

log = logging.getLogger(__name__)
MODEL_ID = "support-assistant"
"""The name clients use for the assistant (the served adapter's own name works too)."""


class ApiError(Exception):
    """An error answered in OpenAI's shape: `{"error": {"message", "type", "code"}}`."""

    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.kind = status, message, code, kind


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text (text parts of a multi-part content joined)."""
        if isinstance(self.content, list):
            return "\n".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat-completion request this server reads (others are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    conversation_id: str | None = None


def error_body(message: str, code: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}


def create_api(manager: DialogueManager, settings: Settings | None = None, *, max_body_bytes: int = 256_000
               ) -> FastAPI:
    """The API app over a dialogue manager; `settings` (default: the manager's) give the keys."""
    api = FastAPI(title="support-assistant", docs_url="/api/docs", openapi_url="/api/openapi.json")
    settings = settings or manager.settings
    if settings.cors_origins:  # a company website calling the API from its visitors' browsers
        api.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)

    @api.exception_handler(ApiError)
    async def api_error(_request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(error_body(err.message, err.code, err.kind), status_code=err.status)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        if not request.url.path.startswith("/v1/"):
            return JSONResponse({"detail": err.errors()}, status_code=422)
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        if first.get("type") == "json_invalid":
            message = "the request body is not valid JSON: send a JSON object with `model` and `messages`"
        else:
            message = f"{where or 'body'}: {first.get('msg', 'invalid')}"
        return JSONResponse(error_body(message, "invalid_request"), status_code=400)

    @api.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        if request.url.path.startswith("/v1/") and request.method == "POST":
            length = request.headers.get("content-length")
            size = int(length) if length and length.isdigit() else len(await request.body())  # chunked: counted
            if size > max_body_bytes:
                return JSONResponse(error_body(f"the request body is {size} bytes; the limit is {max_body_bytes}",
                                               "body_too_large"), status_code=413)
        return await call_next(request)

    def authorised(request: Request) -> None:
        if settings.api_keys:
            scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not key_matches(presented.strip(), settings.api_keys):
                raise ApiError(401, "send an API key from ASSISTANT_API_KEYS as `Authorization: Bearer KEY`",
                               "invalid_api_key", "authentication_error")
        elif not _is_loopback_client(request):
            raise ApiError(403, "no API keys are configured, so the API answers on loopback only: set "
                                "ASSISTANT_API_KEYS", "api_keys_not_configured", "permission_error")

    def served_models() -> list[str]:
        return list(dict.fromkeys([MODEL_ID, manager.generator.adapter_id or "base"]))

    @api.get("/healthz")
    def healthz() -> dict[str, object]:
        """Liveness and what is loaded: model, adapter and index size."""
        queue = getattr(manager.generator, "queue", None)
        return {"status": "ok", "model": manager.generator.model_id, "adapter": manager.generator.adapter_id,
                "index_documents": manager.retriever.index.document_count,
                "generation": queue.load() if queue is not None else None}

    @api.get("/readyz")
    def readyz() -> JSONResponse:
        """Ready when the store answers and the index holds documents (503 with the reason otherwise)."""
        problems = []
        try:
            manager.store.conversations(limit=1)
        except (StoreUnavailable, SQLAlchemyError) as err:
            problems.append(f"store: {str(err).splitlines()[0][:200]}")
        if manager.retriever.index.document_count == 0:
            problems.append("index: no documents")
        body = {"status": "ready" if not problems else "not ready", "problems": problems}
        return JSONResponse(body, status_code=200 if not problems else 503)

    @api.get("/v1/models", dependencies=[Depends(authorised)])
    def models() -> dict[str, Any]:
        """The model this server answers with, under its alias and its adapter's name."""
        created = int(time.time())
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created,
                                            "owned_by": "support-assistant"} for name in served_models()]}

    @api.post("/v1/chat/completions", dependencies=[Depends(authorised)])
    async def chat_completions(body: ChatRequest, request: Request) -> Any:
        """One turn of the dialogue manager; streamed as server-sent events when `stream` is true."""
        if body.model not in served_models():
            raise ApiError(404, f"model {body.model!r} is not served here: use one of {', '.join(served_models())} "
                                "(GET /v1/models)", "model_not_found")
        question, earlier = _turn(body.messages)
        cancel = threading.Event()  # set when the client goes away: its turn leaves the generation queue
        CANCEL.set(cancel)
        conversation_id = await run_in_threadpool(_conversation, manager, body.conversation_id, earlier)
        events = manager.respond(conversation_id, question, channel="api")
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            first = await run_in_threadpool(_next, events)  # errors before any byte become HTTP errors

            async def body_stream() -> AsyncIterator[str]:
                pieces = _produce(_sse(completion_id, body.model, first, events), cancel)
                watcher = asyncio.create_task(_watch_disconnect(request, cancel))
                try:
                    while (piece := await pieces.get()) is not None:
                        yield piece
                finally:  # also when the client disconnected and the response task was cancelled
                    cancel.set()
                    watcher.cancel()

            return StreamingResponse(body_stream(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return await run_in_threadpool(_complete, completion_id, body.model, events)

    return api


def _produce(stream: Iterator[str], cancel: threading.Event) -> asyncio.Queue[str | None]:
    """Run the turn in a thread of its own, its pieces queued for the response (None ends them).

    The turn does not wait for the client to read: a slow reader (TCP back-pressure) would otherwise
    hold its generation slot for as long as it takes to read. The turn stops early only when `cancel`
    is set (the client went away).
    """
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()

    def run() -> None:
        try:
            for piece in stream:
                if cancel.is_set():
                    break
                loop.call_soon_threadsafe(pieces.put_nowait, piece)
        except Exception:  # noqa: BLE001 - logged; the client sees the stream end
            log.exception("streamed turn failed")
        finally:
            stream.close()
            loop.call_soon_threadsafe(pieces.put_nowait, None)

    context = contextvars.copy_context()  # the turn's CANCEL event travels with it
    threading.Thread(target=context.run, args=(run,), name="api-turn", daemon=True).start()
    return pieces


async def _watch_disconnect(request: Request, cancel: threading.Event) -> None:
    """Set `cancel` as soon as the client closes the connection (not only at the next write, minutes later when the
    turn waits in the generation queue)."""
    while not cancel.is_set():
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.set()


def _is_loopback_client(request: Request) -> bool:
    from assistant.serving import is_loopback

    host = request.client.host if request.client else ""
    return host in ("testclient",) or (bool(host) and is_loopback(host))


def _turn(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The new customer message (the last one, a user message) and the user/assistant messages before it."""
    last = messages[-1]
    if last.role != "user" or not last.text().strip():
        raise ApiError(400, "the last message must be a user message with text: it is the customer's new turn",
                       "invalid_messages")
    earlier = [{"role": m.role, "content": m.text()} for m in messages[:-1]
               if m.role in ("user", "assistant") and m.text().strip()]
    return last.text(), earlier


def _conversation(manager: DialogueManager, conversation_id: str | None, earlier: list[dict[str, str]]) -> str:
    """The request's conversation: a known one continues; otherwise a new one is seeded with `earlier`, once."""
    try:
        if conversation_id is not None:
            check_conversation_id(conversation_id)
            if manager.store.conversation(conversation_id) is not None:
                return conversation_id
        conversation_id = manager.store.ensure_conversation(conversation_id, "api")
        for message in earlier:
            manager.store.add_message(conversation_id, message["role"], message["content"], "api")
        return conversation_id
    except InvalidMessage as err:
        raise ApiError(400, str(err), "invalid_conversation_id") from err
    except (StoreUnavailable, SQLAlchemyError) as err:
        raise ApiError(503, "the conversation store is not answering; try again shortly", "store_unavailable",
                       "server_error") from err


def _next(events: Iterator[Event]) -> Event | None:
    try:
        return next(events)
    except StopIteration:
        return None
    except RateLimited as err:
        raise ApiError(429, str(err), "rate_limited") from err
    except InvalidMessage as err:
        raise ApiError(400, str(err), "invalid_message") from err
    except (StoreUnavailable, SQLAlchemyError) as err:
        raise ApiError(503, "the conversation store is not answering; nothing was stored, try again shortly",
                       "store_unavailable", "server_error") from err


def _extra(final: Final | None, ticket_id: int | None) -> dict[str, Any]:
    """The `assistant` field: conversation id, citations, whether it was handed over, and the ticket."""
    return {"conversation_id": final.conversation_id if final else None,
            "citations": final.citations if final else [], "escalated": ticket_id is not None,
            "ticket_id": ticket_id, "decision": final.decision if final else None,
            "message_id": final.message_id if final else None}


def _complete(completion_id: str, model: str, events: Iterator[Event]) -> dict[str, Any]:
    final, ticket_id = None, None
    while (event := _next(events)) is not None:
        if isinstance(event, Escalated):
            ticket_id = event.ticket_id
        elif isinstance(event, Final):
            final = event
    text = final.text if final else ""
    return {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "assistant": _extra(final, ticket_id)}


def _sse(completion_id: str, model: str, first: Event | None, events: Iterator[Event]) -> Iterator[str]:
    """Server-sent events in OpenAI's chunk shape; the last chunk carries `assistant`, then `[DONE]`."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    final, ticket_id, event = None, None, first
    try:
        while event is not None:
            if isinstance(event, Token):
                yield chunk({"content": event.text})
            elif isinstance(event, Escalated):
                ticket_id = event.ticket_id
            elif isinstance(event, Final):
                final = event
            event = _next(events)
    except ApiError as err:  # headers are sent: the error goes in the stream, as OpenAI does
        yield f"data: {json.dumps(error_body(err.message, err.code, err.kind))}\n\n"
        return
    finally:
        events.close()  # a client that went away closes this stream: the turn and its generation stop too
    yield chunk({}, "stop", assistant=_extra(final, ticket_id))
    yield "data: [DONE]\n\n"
