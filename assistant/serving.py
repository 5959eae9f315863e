"""Compose the server: the API app with the Gradio chat mounted at `/`."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket

from fastapi import FastAPI

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


def build_server(settings: Settings, manager: DialogueManager | None = None) -> FastAPI:
    """The FastAPI app with the customer chat at `/` (the manager is built from settings if not given)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from assistant.api import create_api
    from assistant.bootstrap import build_dialogue_manager
    from assistant.handoff import AgentDesk
    from ui.agent import build_agent_app
    from ui.chat import build_chat_app

    check_exposure(settings)
    manager = manager or build_dialogue_manager(settings)
    api = create_api(manager)
    desk = AgentDesk(manager.store, settings.max_message_chars)
    keys = list(settings.agent_keys)
    # The console checks its key on the server: any user name, an agent key as the password.
    auth = (lambda _user, password: key_matches(password, keys)) if keys else None
    api = gr.mount_gradio_app(api, build_agent_app(desk, settings), path="/agent", auth=auth,
                              auth_message="Sign in with any name and an agent key.", footer_links=[])
    return gr.mount_gradio_app(api, build_chat_app(manager, settings), path="/", server_name=settings.host,
                               server_port=settings.port, footer_links=[])
