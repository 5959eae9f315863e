"""Compose the server: the API app with the Gradio chat mounted at `/`."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
from typing import Any

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.config import Settings
from assistant.dialogue import DialogueManager
from assistant.errors import ConfigError
from assistant.keys import key_matches

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to them (localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except socket.gaierror:
            return False
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def check_exposure(settings: Settings) -> None:
    """Refuse a non-loopback address unless both API keys and agent keys are configured."""
    missing = [name for name, keys in (("ASSISTANT_API_KEYS", settings.api_keys),
                                       ("ASSISTANT_AGENT_KEYS", settings.agent_keys))
               if not any(key.strip() for key in keys)]  # a blank key opens nothing, so it is not a key
    if missing and not is_loopback(settings.host):
        raise ConfigError(
            f"refusing to listen on {settings.host}: {' and '.join(missing)} not set, so those surfaces would be "
            "open to the network. Set both, or listen on 127.0.0.1"
        )
    if missing:
        log.warning("%s not set: the API and agent surfaces answer on loopback only", " and ".join(missing))


# Before sign-in the console answers only with its sign-in page, the sign-in form's post and the
# page's static files; everything else (config, API info, run history, manifest...) is refused.
_OPEN_BEFORE_SIGN_IN = re.compile(r"/login/?|/(assets|static|svelte)/.+|/favicon\.ico|/(gradio_api/)?theme\.css")
# Gradio writes the app's endpoint list into the sign-in page; before sign-in it is replaced by an empty one.
_API_INFO = re.compile(rb"(<script>window\.gradio_api_info = ).*?(;</script>)", re.DOTALL)
_NO_API_INFO = rb'\g<1>{"named_endpoints": {}, "unnamed_endpoints": {}}\g<2>'
_REFUSED = json.dumps({"detail": "Not authenticated: sign in to the agent console with an agent key"}).encode()
_UNCLEANABLE = json.dumps({"detail": "the sign-in page could not be served without the console's endpoint list"}
                          ).encode()


class SignInFirst:
    """ASGI middleware: the Gradio app mounted at `prefix` shows nothing of itself until its visitor signed in."""

    def __init__(self, app: ASGIApp, prefix: str, console: Any) -> None:
        self.app, self.prefix, self.console = app, prefix, console

    def signed_in(self, scope: Scope) -> bool:
        """True when the request carries a session cookie that the console issued at sign-in."""
        cookies = HTTPConnection(scope).cookies
        tokens = getattr(self.console, "tokens", {})  # no such attribute: nobody counts as signed in
        cookie_id = getattr(self.console, "cookie_id", None)
        return cookie_id is not None and any(
            tokens.get(cookies.get(name)) is not None
            for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        inside = path == self.prefix or path.startswith(self.prefix + "/")
        if scope["type"] not in ("http", "websocket") or not inside or self.signed_in(scope):
            return await self.app(scope, receive, send)
        rest = path[len(self.prefix):]
        if scope["type"] == "http" and rest in ("", "/") and scope["method"] in ("GET", "HEAD"):
            return await self._sign_in_page(scope, receive, send)
        if scope["type"] == "http" and _OPEN_BEFORE_SIGN_IN.fullmatch(rest):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(_REFUSED)).encode())]})
        await send({"type": "http.response.body", "body": _REFUSED})

    async def _sign_in_page(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Gradio's sign-in page with the console's endpoint list taken out."""
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]  # a body we can edit
        start: Message = {}
        body = bytearray()

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app({**scope, "headers": headers}, receive, collect)
        page, replaced = _API_INFO.subn(_NO_API_INFO, bytes(body))
        kept = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if b"gradio_api_info" in page and replaced != 1:  # a page that cannot be cleaned is not served
            page, start, kept = _UNCLEANABLE, {"status": 503}, [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": start.get("status", 500),
                    "headers": [*kept, (b"content-length", str(len(page)).encode())]})
        await send({"type": "http.response.body", "body": page if scope["method"] != "HEAD" else b""})


def build_server(settings: Settings, manager: DialogueManager | None = None) -> FastAPI:
    """The FastAPI app with the customer chat at `/` (the manager is built from settings if not given)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr
    from fastapi.responses import RedirectResponse

    from assistant.api import create_api
    from assistant.bootstrap import build_dialogue_manager
    from assistant.generation_worker import GenerationWorker, serving_queue
    from assistant.handoff import AgentDesk
    from assistant.model_desk import ModelDesk
    from ui.agent import CONSOLE_CSS, build_agent_app
    from ui.chat import build_chat_app
    from ui.render import CHAT_CSS

    check_exposure(settings)
    manager = manager or build_dialogue_manager(settings)
    if not isinstance(manager.generator, GenerationWorker):  # every turn of this server goes through one queue
        manager.generator = GenerationWorker(manager.generator, serving_queue(settings, manager.generator))
    api = create_api(manager, settings)
    desk = AgentDesk(manager.store, settings.max_message_chars)
    keys = list(settings.agent_keys)
    # The console checks its key on the server: any user name, an agent key as the password.
    auth = (lambda _user, password: key_matches(password, keys)) if keys else None
    console_app = build_agent_app(desk, settings, retriever=manager.retriever, models=ModelDesk(settings, manager))

    @api.get("/agent", include_in_schema=False)
    def console_without_slash() -> RedirectResponse:
        """`/agent` as typed: the console lives at `/agent/`."""
        return RedirectResponse("/agent/", status_code=307)

    api = gr.mount_gradio_app(api, console_app, path="/agent", auth=auth, css=CONSOLE_CSS,
                              auth_message="Sign in with any name and an agent key.", footer_links=[])
    if auth is not None:
        console = next(route.app for route in api.routes if isinstance(route, Mount) and route.path == "/agent")
        api.add_middleware(SignInFirst, prefix="/agent", console=console)
    return gr.mount_gradio_app(api, build_chat_app(manager, settings), path="/", server_name=settings.host,
                               server_port=settings.port, footer_links=[], css=CHAT_CSS)
