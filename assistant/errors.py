"""Errors that reach a person: each says what is wrong and what to do about it."""

from __future__ import annotations


class AssistantError(Exception):
    """A problem the user can fix (configuration, input, a missing artifact or service)."""


class ConfigError(AssistantError):
    """The configuration names something that does not exist or cannot work."""


class InvalidMessage(AssistantError):
    """A chat message that cannot be answered as sent (empty, too long, not text)."""


class InvalidOption(AssistantError):
    """A command-line or console option that cannot be used as given (a bad date, an unknown channel)."""


class StoreUnavailable(AssistantError):
    """The conversation store cannot be reached or opened."""


class InvalidFeedback(InvalidMessage):
    """Feedback that cannot be recorded (a rating other than ±1, or no reply of the conversation to rate)."""


class RateLimited(InvalidMessage):
    """More customer messages in a conversation than the rate limit allows; the message was not stored."""


class InvalidConversationId(InvalidMessage):
    """A conversation id the store cannot hold (ids are 1–64 characters of letters, digits, `_` and `-`)."""
