"""The dialogue manager: one customer turn in, a stream of events out."""

from assistant.dialogue.events import Escalated, Event, Final, Sources, Token
from assistant.dialogue.manager import DialogueManager

__all__ = ["DialogueManager", "Escalated", "Event", "Final", "Sources", "Token"]
