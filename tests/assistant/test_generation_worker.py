"""The generation queue: bounded parallelism, arrival order, refusals, cancellation, and each request its own reply."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from assistant.generation import ScriptedGenerator, TransformersGenerator
from assistant.generation_worker import CANCEL, GenerationBusy, GenerationQueue, GenerationWorker, TurnCancelled


class SlowGenerator(ScriptedGenerator):
    """Replies with the prompt's last message, one word per `delay` seconds, and records overlap."""

    def __init__(self, delay: float = 0.02) -> None:
        super().__init__(lambda messages: messages[-1]["content"])
        self.delay, self.running, self.most = delay, 0, 0
        self.order: list[str] = []
        self._lock = threading.Lock()

    def stream(self, messages, **params):
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.order.append(messages[-1]["content"])
        try:
            for piece in super().stream(messages, **params):
                time.sleep(self.delay)
                yield piece
        finally:
            with self._lock:
                self.running -= 1


def ask(worker: GenerationWorker, text: str) -> str:
    return "".join(worker.stream([{"role": "user", "content": text}]))


@pytest.mark.parametrize("slots", [1, 3])
def test_at_most_slots_generations_run_and_each_request_gets_its_own_reply(slots):
    slow = SlowGenerator()
    worker = GenerationWorker(slow, GenerationQueue(slots=slots))
    texts = [f"reply number {i} of the test" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda t: ask(worker, t), texts))
    assert replies == texts and slow.most == slots
    assert worker.queue.load() == {"running": 0, "waiting": 0, "slots": slots}


def test_turns_are_served_in_arrival_order():
    slow = SlowGenerator(delay=0.03)
    worker = GenerationWorker(slow, GenerationQueue(slots=1))
    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=ask, args=(worker, f"turn {i}")))
        threads[-1].start()
        time.sleep(0.02)  # each arrives after the previous one queued
    for thread in threads:
        thread.join()
    assert slow.order == [f"turn {i}" for i in range(5)]


def test_a_full_queue_and_a_long_wait_are_refused_clearly():
    slow = SlowGenerator(delay=0.2)
    worker = GenerationWorker(slow, GenerationQueue(slots=1, max_waiting=0, wait_s=0.3))
    busy = threading.Thread(target=ask, args=(worker, "a long reply of many words"))
    busy.start()
    time.sleep(0.05)
    with pytest.raises(GenerationBusy, match="already waiting"):
        ask(worker, "second")
    waiting = GenerationWorker(slow, GenerationQueue(slots=1, wait_s=0.2))
    holder = threading.Thread(target=ask, args=(waiting, "a long reply of many words"))
    holder.start()
    time.sleep(0.05)
    with pytest.raises(GenerationBusy, match="waited 0 s for the model"):
        ask(waiting, "second")
    busy.join()
    holder.join()


def test_a_cancelled_turn_leaves_the_queue_and_stops_generating():
    slow = SlowGenerator(delay=0.05)
    worker = GenerationWorker(slow, GenerationQueue(slots=1))
    holder = threading.Thread(target=ask, args=(worker, "one two three four five six"))
    holder.start()
    time.sleep(0.02)
    cancel = threading.Event()

    def waiting_turn():
        CANCEL.set(cancel)
        return ask(worker, "never generated")

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(waiting_turn)
        time.sleep(0.05)
        cancel.set()
        with pytest.raises(TurnCancelled, match="while its turn waited"):
            future.result(timeout=2)
    holder.join()
    assert "never generated" not in slow.order and worker.queue.load()["waiting"] == 0

    cancel = threading.Event()
    CANCEL.set(cancel)
    pieces = worker.stream([{"role": "user", "content": "one two three four five"}])
    assert next(pieces) == "one "
    cancel.set()
    with pytest.raises(TurnCancelled, match="during generation"):
        list(pieces)
    CANCEL.set(None)
    assert worker.queue.load()["running"] == 0


def test_overlapping_real_generations_each_get_their_own_greedy_reply(tiny_model_dir: Path):
    generator = TransformersGenerator(tiny_model_dir, device="cpu", max_new_tokens=12, threads=1)
    prompts = [[{"role": "user", "content": f"question {i} about {topic}"}]
               for i, topic in enumerate(["passwords", "refunds", "cameras", "shipping", "plans", "doorbells"])]
    alone = ["".join(generator.stream(p)) for p in prompts]
    worker = GenerationWorker(generator, GenerationQueue(slots=3))
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda p: "".join(worker.stream(p)), prompts))
    assert together == alone
