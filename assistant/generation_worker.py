"""Many customers at once: a request queue in front of the model, with bounded parallel generation.

Turns call `GenerationWorker.stream` like any generator. At most `slots` generations run at once (on a
2-core CPU one at a time is fastest: two would share the cores and both slow down); the rest wait in
arrival order, at most `max_waiting` of them, each at most `wait_s` seconds, else `GenerationBusy`.
A turn whose client went away (the API sets the request's cancel event) leaves the queue at once, or
stops its generation at the next token. Nothing else holds a lock around generation: retrieval,
checking and logging of other turns go on while one generates.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from assistant.errors import AssistantError
from assistant.generation import ChatMessages, Generator

log = logging.getLogger(__name__)
CANCEL: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("generation_cancel", default=None)
"""Set by a request handler to an event that is set when its client goes away."""


class GenerationBusy(AssistantError):
    """Too many turns are waiting for the model, or one waited too long."""


class TurnCancelled(AssistantError):
    """The client of this turn went away while it waited or generated."""


class GenerationQueue:
    """The slots and the waiting line: shared by every worker over one machine's model memory."""

    def __init__(self, *, slots: int = 1, max_waiting: int = 64, wait_s: float = 120.0) -> None:
        self.slots = slots
        self.max_waiting = max_waiting
        self.wait_s = wait_s
        self._lock = threading.Condition()
        self._running = 0
        self._waiting: collections.deque[object] = collections.deque()

    def load(self) -> dict[str, int]:
        """Generations running and turns waiting now."""
        with self._lock:
            return {"running": self._running, "waiting": len(self._waiting), "slots": self.slots}

    def enter(self, cancel: threading.Event | None) -> None:
        """Wait for a slot, first come first served; raises GenerationBusy or TurnCancelled instead of waiting on."""
        ticket = object()
        deadline = time.monotonic() + self.wait_s
        with self._lock:
            must_wait = self._running >= self.slots or bool(self._waiting)
            if must_wait and len(self._waiting) >= self.max_waiting:
                raise GenerationBusy(f"the model is busy and {len(self._waiting)} turns are already waiting for it; "
                                     "try again shortly")
            self._waiting.append(ticket)
            try:
                while self._waiting[0] is not ticket or self._running >= self.slots:
                    if cancel is not None and cancel.is_set():
                        raise TurnCancelled("the client went away while its turn waited for the model")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise GenerationBusy(f"waited {self.wait_s:.0f} s for the model; try again shortly")
                    self._lock.wait(timeout=min(left, 0.1))
                self._running += 1
            finally:
                self._waiting.remove(ticket)
                self._lock.notify_all()

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            self._lock.notify_all()


def cpu_slots(settings: Any) -> int:
    """Generations at once on the CPU: as configured, else one per core, up to 4."""
    from assistant.generation import cpu_threads

    return settings.generation_slots or min(cpu_threads(), 4)


def serving_queue(settings: Any, generator: Generator) -> GenerationQueue:
    """The serving queue for this machine. On the CPU, several single-threaded generations beat one that uses every
    core (per-token Python overhead leaves cores idle): one slot per core, up to 4, unless configured."""
    from assistant.generation import cpu_threads

    on_cpu = getattr(generator, "device", "cpu") == "cpu"
    slots = cpu_slots(settings) if on_cpu else settings.generation_slots or 1
    if on_cpu and settings.threads is None and slots > 1 and hasattr(generator, "device"):
        import torch

        torch.set_num_threads(max(1, cpu_threads() // slots))
    log.info("generation queue: %d slot(s)", slots)
    return GenerationQueue(slots=slots, max_waiting=settings.generation_max_waiting, wait_s=settings.generation_wait_s)


class GenerationWorker:
    """A Generator that runs a model's turns through a GenerationQueue."""

    def __init__(self, generator: Generator, queue: GenerationQueue | None = None) -> None:
        self.generator = generator
        self.queue = queue or GenerationQueue()

    @property
    def model_id(self) -> str:
        return self.generator.model_id

    @property
    def adapter_id(self) -> str | None:
        return self.generator.adapter_id

    def serving(self, generator: Generator) -> GenerationWorker:
        """A worker for another model on the same queue (switching models never runs more than `slots` at once)."""
        return GenerationWorker(generator, self.queue)

    def stream(self, messages: ChatMessages, **params: Any) -> Iterator[str]:
        """The generator's pieces, once this turn's slot is free."""
        cancel = CANCEL.get()
        self.queue.enter(cancel)
        try:
            pieces = self.generator.stream(messages, **({"cancel": cancel} | params if cancel else params))
            try:
                for piece in pieces:
                    if cancel is not None and cancel.is_set():
                        raise TurnCancelled("the client went away during generation")
                    yield piece
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
        finally:
            self.queue.leave()
