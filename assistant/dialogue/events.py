"""Events a turn produces, and the one helper that collects them. The UI, the API, evaluation and
`assistant ask` only render these."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from knowledge import Hit


@dataclass(frozen=True)
class Token:
    """Checked text: a sentence (or list item) that passed the grounding check, ready to show."""

    text: str


@dataclass(frozen=True)
class Sources:
    """The articles the reply's evidence comes from (empty when the assistant abstains)."""

    hits: list[Hit]


@dataclass(frozen=True)
class Escalated:
    """The conversation was handed to a human; `ticket_id` is what the customer is told."""

    ticket_id: int
    reason: str


@dataclass(frozen=True)
class CheckOutcome:
    """What the grounding check did to the model's reply."""

    before: float | None = None
    """Groundedness of everything the model wrote (None when it wrote nothing checkable)."""
    after: float | None = None
    """Groundedness of what the customer was shown."""
    fallback: bool = False
    """No generated sentence passed: the reply was quoted from the evidence."""
    removed: int = 0
    """Sentences held back: unsupported, repeated, cut off or table rows."""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    """The evidence units the prompt held (article number, doc id, score, text)."""
    generated: str = ""
    """The model's whole draft (never shown; for evaluation and training)."""


@dataclass(frozen=True)
class Final:
    """The end of a turn: the whole checked reply (exactly what was streamed), its citations and why."""

    text: str
    citations: list[dict[str, Any]]
    decision: str
    reason: str
    conversation_id: str = ""
    message_id: int | None = None
    timings: dict[str, float | None] = field(default_factory=dict)
    check: CheckOutcome = field(default_factory=CheckOutcome)
    reason_detail: str = ""


Event = Token | Sources | Escalated | Final


@dataclass
class TurnView:
    """A turn's events collected as they arrive: what the UI, the CLI, the API and evaluation render."""

    text: str = ""
    hits: list[Hit] = field(default_factory=list)
    ticket_id: int | None = None
    final: Final | None = None

    def add(self, event: Event) -> TurnView:
        """Take one event (returns self, so a stream can be folded)."""
        if isinstance(event, Token):
            self.text += event.text
        elif isinstance(event, Sources):
            self.hits = list(event.hits)
        elif isinstance(event, Escalated):
            self.ticket_id = event.ticket_id
        elif isinstance(event, Final):
            self.final = event
        return self

    @classmethod
    def collect(cls, events: Iterable[Event]) -> TurnView:
        """Run a whole turn and collect it."""
        view = cls()
        for event in events:
            view.add(event)
        return view

    @property
    def escalated(self) -> bool:
        return self.ticket_id is not None
