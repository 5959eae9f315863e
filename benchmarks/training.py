"""LoRA SFT speed: our training path against a plain Trainer with default settings, same data, same run.

Ours (`training.sft`, its default `grouped` layout): examples of similar length batched together, padded
at the right with no attention mask (the fast causal kernel), and logits computed only where a token is
learned; `--layout packed` times whole examples packed into rows with a block-diagonal mask instead.
Baseline: `transformers.Trainer` with its defaults (8 examples per batch padded to the longest by
`DataCollatorForSeq2Seq`, the model's own loss over full logits). Both train the same LoRA (r=8 on every
linear layer) of the same base on the same examples for the same number of optimiser steps, each in its
own process (so peak memory is its own): tokens/s counts real (non-padding) tokens. CPU always; GPU too
when one is present.

`--json` prints one object on the last line; `*_ratio` keys are ours / baseline (memory: baseline / ours).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
log = logging.getLogger("benchmarks.training")


def load_examples(path: Path | None, limit: int) -> list[Any]:
    """Examples of a training run's train.jsonl, or built from the demo help center and transcripts."""
    from assistant.config import load_settings
    from training.data import Example
    from training.mixture import Mixture, assemble
    from training.records import read_transcripts

    if path and path.is_file():
        examples = [Example.from_transcript(t) for t in read_transcripts([path])]
    else:
        train, _dev = assemble(Mixture(transcripts=[ROOT / "knowledge/demo/transcripts.jsonl"], index="default"),
                               load_settings())
        examples = train
    return examples[:limit]


class Counting:
    """Wraps a collator and counts the real (non-padding) tokens it hands to the model."""

    def __init__(self, collate: Any) -> None:
        self.collate, self.tokens = collate, 0

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        from training.sft import rows_of

        self.tokens += sum(len(row["input_ids"]) for row in rows_of(items))
        return self.collate(items)


def run_mode(mode: str, device: str, data: Path | None, limit: int, steps: int, layout: str) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from assistant.config import load_settings
    from assistant.generation import cpu_threads
    from assistant.models import resolve_model_dir
    from training.sft import ALL_LINEAR, RowCollator, SFTConfig, _trainer_class, layout_rows, render, training_arguments

    if device == "cpu":
        torch.set_num_threads(cpu_threads())
    base = resolve_model_dir(load_settings())
    tokenizer = AutoTokenizer.from_pretrained(base)
    rendered = render(load_examples(data, limit), tokenizer, 1024)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16,
                                             target_modules=list(ALL_LINEAR)))
    use_cuda = device == "cuda"
    out = Path("/tmp") / f"bench-training-{mode}"
    if mode == "ours":
        config = SFTConfig(max_steps=steps, grad_accum=2, layout=layout, eval_every=10**6)
        args = training_arguments(out, config, has_dev=False, use_cuda=use_cuda)
        args.save_strategy = "no"
        collator = Counting(RowCollator(tokenizer.pad_token_id))
        trainer = _trainer_class()(model=model, args=args, train_dataset=layout_rows(rendered, config),
                                   data_collator=collator)
    else:
        rows = [{"input_ids": r.input_ids, "attention_mask": [1] * len(r.input_ids), "labels": r.labels}
                for r in rendered]
        args = TrainingArguments(output_dir=str(out), max_steps=steps, report_to="none", save_strategy="no",
                                 use_cpu=not use_cuda, bf16=use_cuda, disable_tqdm=True, learning_rate=2e-4)
        collator = Counting(DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100))
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
    if use_cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() if use_cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"tokens_per_s": round(collator.tokens / seconds, 1), "tokens": collator.tokens,
            "seconds": round(seconds, 1), "steps": steps, "peak_memory_mb": round(peak / 2**20, 1)}


def main() -> None:
    from training.sft import LAYOUTS, SFTConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="A run's train.jsonl (default: from the demo).")
    parser.add_argument("--examples", type=int, default=96, help="Examples to train on.")
    parser.add_argument("--steps", type=int, default=6, help="Optimiser steps per mode.")
    parser.add_argument("--layout", default=SFTConfig.layout, choices=LAYOUTS, help="Our batches' layout.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object on the last line.")
    parser.add_argument("--mode", choices=["ours", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if args.mode:  # one measurement, in a process of its own
        figures = run_mode(args.mode, args.device, args.data, args.examples, args.steps, args.layout)
        sys.stdout.write(json.dumps(figures) + "\n")
        return
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result: dict[str, Any] = {"baseline": "plain transformers Trainer, default settings (batch 8, padded)",
                              "layout": args.layout}
    for device in devices:
        figures = {}
        for mode in ("plain", "ours"):
            command = [sys.executable, __file__, "--mode", mode, "--device", device, "--examples", str(args.examples),
                       "--steps", str(args.steps),
                       "--layout", args.layout, *(["--data", str(args.data)] if args.data else [])]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            figures[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            log.info("%s %s: %s", device, mode, figures[mode])
        result[device] = {
            "ours": figures["ours"], "baseline": figures["plain"],
            "tokens_per_s_ratio": round(figures["ours"]["tokens_per_s"] / figures["plain"]["tokens_per_s"], 2),
            "peak_memory_ratio": round(figures["plain"]["peak_memory_mb"] / figures["ours"]["peak_memory_mb"], 2),
        }
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    for device in devices:
        r = result[device]
        print(f"{device}: ours {r['ours']['tokens_per_s']} tokens/s, {r['ours']['peak_memory_mb']} MB peak; "
              f"plain Trainer {r['baseline']['tokens_per_s']} tokens/s, {r['baseline']['peak_memory_mb']} MB peak; "
              f"speed x{r['tokens_per_s_ratio']}, memory x{r['peak_memory_ratio']} less")


if __name__ == "__main__":
    main()
