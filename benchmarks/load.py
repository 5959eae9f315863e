"""Many customers at once through the API: throughput, first-token and total latency, errors, and nothing lost.

N simulated customers (default 16) each hold a multi-turn conversation (`--turns`, default 3, questions
from the demo dev set) with the server on 127.0.0.1, streaming every reply through
`/v1/chat/completions`; the run is bounded by `--max-seconds`. The baseline is one customer asking the
same number of questions alone, in the same run: `throughput_ratio` = turns/s with N customers / turns/s
alone. Afterwards every message sent is looked up in the store: each must be there exactly once.

`--backend sqlite|postgres` picks the store (PostgreSQL: `ASSISTANT_TEST_DATABASE_URL`, a schema of its own,
dropped afterwards). `--generator scripted` replaces the model with one that echoes the evidence, to
measure the serving path alone. `--json` prints one object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.output import emit  # noqa: E402  (after the project root is on the path)

log = logging.getLogger("benchmarks.load")
KEY = "load-test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(settings: Any, manager: Any) -> tuple[str, Any, threading.Thread]:
    import uvicorn

    from assistant.serving import build_server

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_server(settings, manager), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


async def one_turn(client: Any, url: str, question: str, conversation_id: str | None) -> dict[str, Any]:
    """One streamed turn: seconds to the first content and to the end, the reply, the conversation id."""
    body: dict[str, Any] = {"model": "support-assistant", "stream": True,
                            "messages": [{"role": "user", "content": question}]}
    if conversation_id:
        body["conversation_id"] = conversation_id
    started, first, text, extra = time.perf_counter(), None, "", {}
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {KEY}"}) as response:
        if response.status_code != 200:
            return {"error": f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"}
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                return {"error": chunk["error"]["message"]}
            content = chunk["choices"][0]["delta"].get("content")
            if content:
                first = first or time.perf_counter() - started
                text += content
            extra = chunk.get("assistant") or extra
    total = time.perf_counter() - started
    return {"first_s": first if first is not None else total, "total_s": total, "text": text,
            "conversation_id": extra.get("conversation_id")}


async def customer(client: Any, url: str, questions: list[str], deadline: float) -> list[dict[str, Any]]:
    turns, conversation_id = [], None
    for question in questions:
        if time.perf_counter() > deadline:
            break
        try:
            turn = await one_turn(client, url, question, conversation_id)
        except Exception as err:  # a broken connection counts as an error, the run goes on
            turn = {"error": f"{type(err).__name__}: {err}"}
        turn["question"] = question
        turns.append(turn)
        conversation_id = turn.get("conversation_id") or conversation_id
    return turns


async def crowd(url: str, conversations: list[list[str]], max_seconds: float) -> tuple[list[dict[str, Any]], float]:
    import httpx

    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=len(conversations) + 4)
    async with httpx.AsyncClient(timeout=max_seconds + 60, limits=limits) as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(customer(client, url, qs, deadline) for qs in conversations))
        return [turn for turns in results for turn in turns], time.perf_counter() - started


def figures(turns: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    from assistant.evaluation.aggregate import median, percentile

    done = [t for t in turns if "error" not in t]
    first, total = [t["first_s"] for t in done], [t["total_s"] for t in done]
    return {"turns": len(done), "errors": len(turns) - len(done), "seconds": round(seconds, 2),
            "turns_per_s": round(len(done) / seconds, 3) if seconds else None,
            "first_token_p50_s": median(first), "first_token_p95_s": percentile(first, 0.95),
            "total_p50_s": median(total), "total_p95_s": percentile(total, 0.95),
            "error_examples": sorted({t["error"] for t in turns if "error" in t})[:3]}


def stored_once(store: Any, turns: list[dict[str, Any]]) -> dict[str, int]:
    """Each question sent (in its conversation) found in the store: exactly once, missing, or more than once."""
    sent = Counter((t["conversation_id"], t["question"]) for t in turns if t.get("conversation_id"))
    found = Counter()
    for conversation_id in {c for c, _ in sent}:
        for message in store.messages(conversation_id):
            if message.role == "user":
                found[(conversation_id, message.content)] += 1
    return {"sent": sum(sent.values()), "stored_once": sum(1 for k, n in sent.items() if found[k] == n),
            "missing": sum(max(0, n - found[k]) for k, n in sent.items()),
            "duplicated": sum(max(0, found[k] - n) for k, n in sent.items()),
            "replies_without_conversation": sum(1 for t in turns if "error" not in t and not t.get("conversation_id"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=16)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--generator", choices=["model", "scripted"], default="model")
    parser.add_argument("--slots", type=int, default=None,
                        help="Generations at once (ASSISTANT_GENERATION_SLOTS; default: the server's own choice).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    from assistant.bootstrap import build_dialogue_manager
    from assistant.config import load_settings
    from assistant.evaluation.testsets import load_testset
    from assistant.generation import ScriptedGenerator, echo_evidence
    from assistant.store import Store
    from benchmarks.races import fresh_store_urls
    from knowledge.demo_data import DEVSET

    with fresh_store_urls(args.backend) as make_url:
        settings = load_settings(database_url=make_url(), api_keys=[KEY], agent_keys=["load-agent-key"],
                                 generation_slots=args.slots, max_messages_per_minute=1000)
        generator = ScriptedGenerator(echo_evidence) if args.generator == "scripted" else None
        manager = build_dialogue_manager(settings, generator=generator)
        url, server, thread = start_server(settings, manager)
        questions = [i.question for i in load_testset(DEVSET) if i.answerable]
        conversations = [[questions[(c * args.turns + t) % len(questions)] for t in range(args.turns)]
                         for c in range(args.customers)]
        log.info("warm-up, then 1 customer alone (%d turns), then %d customers x %d turns on %s",
                 args.customers * args.turns // 4, args.customers, args.turns, args.backend)
        asyncio.run(crowd(url, [questions[:2]], args.max_seconds))
        alone_turns, alone_s = asyncio.run(crowd(url, [[q for c in conversations[:4] for q in c]], args.max_seconds))
        turns, seconds = asyncio.run(crowd(url, conversations, args.max_seconds))
        server.should_exit = True
        thread.join(timeout=10)
        alone, together = figures(alone_turns, alone_s), figures(turns, seconds)
        result = {"backend": args.backend, "generator": args.generator, "customers": args.customers,
                  "slots": args.slots or "server default", "baseline": "one customer alone, same server and run",
                  "ours": together, "baseline_alone": alone,
                  "throughput_ratio": round(together["turns_per_s"] / alone["turns_per_s"], 3)
                  if together["turns_per_s"] and alone["turns_per_s"] else None,
                  "store": stored_once(Store.open(settings.store_url), turns)}
    emit(result, args.json, log)


if __name__ == "__main__":
    main()
