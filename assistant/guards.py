"""Input guards: what a customer message must be before the assistant works on it."""

from __future__ import annotations

import unicodedata

from assistant.errors import InvalidMessage

_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def check_message(text: object, max_chars: int) -> str:
    """The message, normalised (NFC, trimmed), or InvalidMessage saying what is wrong and what to do."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidMessage("the message is not UTF-8 text: send plain text") from err
    if not isinstance(text, str):
        raise InvalidMessage("the message must be text")
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise InvalidMessage("the message is empty: type a question, e.g. 'How do I reset my password?'")
    if len(text) > max_chars:
        raise InvalidMessage(
            f"the message is {len(text):,} characters long and the limit is {max_chars:,}: "
            "shorten it or split it into several messages"
        )
    if not looks_like_text(text):
        raise InvalidMessage("the message does not look like text (control or undecodable characters): "
                             "type your question in words")
    return text


def looks_like_text(text: str) -> bool:
    """False for binary garbage: control, surrogate, private-use or replacement characters."""
    return not any(
        ch == "\ufffd" or (unicodedata.category(ch) in ("Cc", "Cs", "Co") and ch not in _ALLOWED_CONTROLS)
        for ch in text
    )
