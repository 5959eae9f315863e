"""Generation speed of the assistant's path against plain `model.generate`, same prompts, same run.

Prints time to first token and tokens/s for: ours (the generator's `stream`, what the dialogue manager
calls: the llama.cpp backend when llama-cpp-python is installed (`make bench-setup`), else transformers
with its cached system prefix), the same with the shipped adapter, the transformers path, plain
transformers `generate` (baseline_generate) and llama-cpp-python's own chat completion on the same
GGUF (baseline_llama_cpp). All on the base model unless named, one slot, `--threads` threads. Ratios
are ours / baseline (higher is better). `--json` prints one object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

log = logging.getLogger("benchmarks.generation")
DEVSET = Path(__file__).resolve().parent.parent / "knowledge" / "demo" / "devset.jsonl"


def build_prompts(settings, n: int) -> list[list[dict[str, str]]]:
    """Realistic prompts: the served system prefix plus retrieved passages and a demo question."""
    from assistant.bootstrap import open_retriever
    from assistant.dialogue.manager import evidence_ranker
    from assistant.prompts import build_messages
    from knowledge.demo_data import TESTSET

    retriever = open_retriever(settings)
    ranker = evidence_ranker(settings, retriever)
    questions = [json.loads(line)["question"] for line in TESTSET.read_text().splitlines() if line.strip()]
    return [build_messages(q, ranker.select(q, retriever.search(q, k=settings.retrieval_k)),
                           company=settings.company_name) for q in questions[:n]]


def dev_perplexity(settings, adapter: str, backend: str, limit: int = 30) -> float:
    """Perplexity of the demo dev set's reference answers, each after the server's prompt for its question
    (teacher-forced: the quality check that greedy agreement alone cannot give)."""
    import numpy as np

    from assistant.bootstrap import open_generator, open_retriever
    from assistant.dialogue.manager import evidence_ranker
    from assistant.prompts import build_messages, render_prompt

    retriever = open_retriever(settings)
    ranker = evidence_ranker(settings, retriever)
    items = [json.loads(line) for line in DEVSET.read_text().splitlines() if line.strip()]
    items = [i for i in items if i["answerable"] and i.get("answer")][:limit]
    local = open_generator(settings.model_copy(update={"generator": "local"}), adapter)
    tokenizer = local.tokenizer
    sequences = []
    for item in items:
        messages = build_messages(item["question"], ranker.select(item["question"], retriever.search(item["question"])),
                                  company=settings.company_name)
        prompt = render_prompt(tokenizer, messages)
        answer = tokenizer.encode(item["answer"], add_special_tokens=False) + [tokenizer.eos_token_id]
        sequences.append((prompt, answer))
    if backend == "transformers":
        import torch

        def logits_of(ids: list[int]) -> np.ndarray:
            with torch.inference_mode():
                return local.model(input_ids=torch.tensor([ids])).logits[0].float().numpy()
    else:
        from assistant.llama_cpp_generation import load_llama

        fast = open_generator(settings.model_copy(update={"generator": "llama_cpp"}), adapter)
        llm = load_llama(fast.gguf_path, lora_path=str(fast.lora_path) if fast.lora_path else None,
                         n_ctx=4096, n_threads=settings.threads, n_threads_batch=settings.threads, logits_all=True,
                         verbose=False)

        def logits_of(ids: list[int]) -> np.ndarray:
            llm.reset()
            llm.eval(ids)
            return np.array(llm.scores[: len(ids)])
    total, count = 0.0, 0
    for prompt, answer in sequences:
        ids = prompt + answer
        logits = logits_of(ids)[len(prompt) - 1: len(ids) - 1]
        top = logits.max(axis=1, keepdims=True)
        log_probs = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
        total -= float(log_probs[np.arange(len(answer)), answer].sum())
        count += len(answer)
    return float(np.exp(total / count))


def open_fast(settings, adapter: str = "base"):
    """The assistant's llama.cpp path (ASSISTANT_GENERATOR=llama_cpp), or None when llama-cpp-python is missing."""
    from assistant.bootstrap import open_generator

    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        log.warning("llama-cpp-python not installed (make bench-setup): ours is the transformers path")
        return None
    return open_generator(settings.model_copy(update={"generator": "llama_cpp"}), adapter)


def time_ours(generator, prompts, new_tokens: int) -> dict[str, float]:
    firsts, rates = [], []
    for messages in prompts:
        start = time.perf_counter()
        first = None
        text = ""
        for piece in generator.stream(messages, max_new_tokens=new_tokens, min_new_tokens=new_tokens):
            first = first or time.perf_counter() - start
            text += piece
        total = time.perf_counter() - start
        firsts.append(first)
        rates.append(new_tokens / total)
    return {"tokens_per_s": statistics.median(rates), "first_token_s": statistics.median(firsts)}


def time_generate(model, tokenizer, prompts, new_tokens: int) -> dict[str, float]:
    import torch

    firsts, rates = [], []
    for messages in prompts:
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        with torch.inference_mode():
            start = time.perf_counter()
            model.generate(**inputs, max_new_tokens=1, do_sample=False, pad_token_id=tokenizer.eos_token_id)
            firsts.append(time.perf_counter() - start)
            start = time.perf_counter()
            model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                           pad_token_id=tokenizer.eos_token_id)
            rates.append(new_tokens / (time.perf_counter() - start))
    return {"tokens_per_s": statistics.median(rates), "first_token_s": statistics.median(firsts)}


def time_llama_cpp(prompts, new_tokens: int, threads: int) -> dict[str, float] | None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        log.warning("llama-cpp-python not installed (make bench-setup): llama.cpp baseline skipped")
        return None
    from assistant.llama_cpp_generation import load_llama
    from assistant.models import default_gguf_path

    llm = load_llama(default_gguf_path(), n_threads=threads, n_threads_batch=threads, n_ctx=4096,
                     verbose=False)
    firsts, rates = [], []
    for messages in prompts:
        start = time.perf_counter()
        first, count = None, 0
        for _ in llm.create_chat_completion(messages, max_tokens=new_tokens, temperature=0.0, stream=True):
            first = first or time.perf_counter() - start
            count += 1
        firsts.append(first)
        rates.append(count / (time.perf_counter() - start))
    return {"tokens_per_s": statistics.median(rates), "first_token_s": statistics.median(firsts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=3, help="demo questions to time (median is reported)")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per prompt")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all available)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    import torch

    from assistant.config import load_settings
    from assistant.generation import TransformersGenerator, cpu_threads
    from assistant.models import resolve_model_dir
    from assistant.prompts import render_prefix, render_prompt

    settings = load_settings(threads=args.threads or cpu_threads(), generation_slots=1)
    threads = settings.threads
    prompts = build_prompts(settings, args.prompts)
    generator = TransformersGenerator(resolve_model_dir(settings), device="cpu", threads=threads)
    prompt_tokens = [len(render_prompt(generator.tokenizer, p)) for p in prompts]
    prefix_tokens = len(render_prefix(generator.tokenizer, prompts[0]))
    log.info("timing %d prompts of %s tokens (cached system prefix %d), %d new tokens, %d threads", len(prompts),
             prompt_tokens, prefix_tokens, args.new_tokens, threads)
    fast = open_fast(settings)
    ours_generator = fast or generator
    time_ours(ours_generator, prompts[:1], 4)  # warm-up (and the prefix cache)
    ours = time_ours(ours_generator, prompts, args.new_tokens)
    transformers_path = time_ours(generator, prompts, args.new_tokens) if fast else ours
    baseline = time_generate(generator.model, generator.tokenizer, prompts, args.new_tokens)
    llama = time_llama_cpp(prompts, args.new_tokens, threads)
    adapter = as_is = None
    if fast:  # the same path on the embedded Q4_1 file as it is (ours runs it requantised to Q8_0)
        unchanged = open_fast(settings.model_copy(update={"gguf_type": "as_is"}))
        time_ours(unchanged, prompts[:1], 4)
        as_is = time_ours(unchanged, prompts, args.new_tokens)
    if fast:  # the same path with the shipped adapter applied by llama.cpp as a LoRA
        with_adapter = open_fast(settings, "shipped")
        time_ours(with_adapter, prompts[:1], 4)
        adapter = time_ours(with_adapter, prompts, args.new_tokens)
    quality = None
    if fast:
        quality = {}
        for adapter_name in ("base", "shipped"):
            exact, quick = (dev_perplexity(settings, adapter_name, b) for b in ("transformers", "llama_cpp"))
            quality[adapter_name] = {"transformers": round(exact, 3), "llama_cpp": round(quick, 3),
                                     "ratio": round(quick / exact, 4)}
        log.info("demo dev answers perplexity: %s", quality)
    cpu = {
        "threads": threads, "dev_perplexity": quality, "prompt_tokens": prompt_tokens, "prefix_tokens": prefix_tokens,
        "new_tokens": args.new_tokens, "ours_backend": "llama_cpp" if fast else "transformers",
        "gguf_type": settings.gguf_type if fast else None, "ours": ours, "ours_gguf_as_is": as_is,
        "ours_with_shipped_adapter": adapter, "ours_transformers": transformers_path,
        "baseline_generate": baseline, "baseline_llama_cpp": llama,
        "tokens_per_s_ratio": ours["tokens_per_s"] / baseline["tokens_per_s"],
        "first_token_s_ratio": baseline["first_token_s"] / ours["first_token_s"],
        "llama_cpp_tokens_per_s_ratio": ours["tokens_per_s"] / llama["tokens_per_s"] if llama else None,
        "transformers_path_tokens_per_s_ratio": transformers_path["tokens_per_s"] / baseline["tokens_per_s"],
    }
    result = {"baseline": "baseline_generate", "cpu": cpu,
              "gpu": None if not torch.cuda.is_available() else "not measured by this version"}
    for name in ("ours", "ours_gguf_as_is", "ours_with_shipped_adapter", "ours_transformers", "baseline_generate",
                 "baseline_llama_cpp"):
        if cpu[name]:
            figures = cpu[name]
            print(f"{name:>20}: {figures['tokens_per_s']:7.1f} tokens/s, first token {figures['first_token_s']:.3f} s",
                  file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"tokens/s ratio ours/generate: {cpu['tokens_per_s_ratio']:.2f}; "
              f"first-token ratio generate/ours: {cpu['first_token_s_ratio']:.2f}")


if __name__ == "__main__":
    main()
