"""LoRA fine-tuning (peft) on the transformers Trainer.

The engine is the Trainer, so gradient accumulation, checkpoints, resume, bf16 on a GPU and
`accelerate launch` / `torchrun` come from it. What this module adds is speed and the artifact:
- conversations are rendered by `assistant.prompts.render_conversation` (the serving renderer, loss on
  the replies only) and laid out in batches of examples of similar length (`layout="grouped"`, the
  default): padded at the right with positions that keep counting, a batch needs no attention mask,
  so attention runs its fast causal kernel, and little compute goes to padding. `layout="packed"`
  instead packs whole examples into rows, each with its own positions (transformers builds the
  block-diagonal mask from them): no padding at all, but the masked kernel is slower on a CPU;
- logits are computed only where a token is learned (a boolean `logits_to_keep`): the 49k-word
  output layer is skipped for the prompt, most of every row;
- the adapter is written atomically to `adapters/<name>/` with `card.json`; an interrupted run
  keeps its last checkpoint (resume with `--resume`) and never touches the adapter being served.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.prompts import IGNORE_INDEX, PROMPT_VERSION, RenderedConversation, render_conversation
from knowledge.artifacts import atomic_directory, folder_checksums, new_card, sha256_file, write_card
from training.data import Example
from training.records import TrainingDataError
from training.runs import (
    ADAM_BYTES_PER_PARAM,
    KEPT_CHECKPOINTS,
    check_space,
    checkpoint_to_resume,
    fit,
    model_fingerprint,
    resumed_run,
    write_run_record,
)

log = logging.getLogger(__name__)
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LAYOUTS = ("grouped", "packed", "single")


@dataclass
class SFTConfig:
    """Hyper-parameters of a LoRA run (recorded in the adapter's card)."""

    epochs: float = 2.0
    max_steps: int = -1
    lr: float = 2e-4
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ALL_LINEAR
    max_tokens: int = 1024
    """Longer examples are left out (and counted)."""
    layout: str = "grouped"
    """How examples become batches: `grouped` (similar lengths padded together, no mask), `packed` (whole
    examples in rows of `row_tokens`, block-diagonal mask) or `single` (one example a batch)."""
    batch_tokens: int = 1024
    """Most tokens of a grouped batch, padding included (examples x the longest); an example longer than this
    is a batch alone, so memory is bounded by the larger of this and `max_tokens`."""
    row_tokens: int = 512
    """Length of a packed row. Short rows train fastest on CPU: a row holding several examples needs a
    block-diagonal mask, so attention falls back to its slow masked kernel and grows with the row's square
    (measured with the packed layout of `benchmarks/training.py`: 183 tokens/s at 512, 161 at 1,024, 119 at
    2,048)."""
    batch_rows: int = 1
    grad_accum: int = 8
    warmup_ratio: float = 0.05
    eval_every: int = 25
    patience: int = 3
    """Evaluations without a better dev loss before stopping early (0: never)."""
    seed: int = 0
    save_dtype: str = "float16"
    """Adapter weights are stored in this dtype (loaded into the model's own)."""

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout {self.layout!r}: use one of {', '.join(LAYOUTS)}")


@dataclass
class SFTResult:
    adapter_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)


# --- rows ---------------------------------------------------------------------------------------------------


def render(examples: Sequence[Example], tokenizer: Any, max_tokens: int) -> list[RenderedConversation]:
    """Token ids and labels of each example; examples longer than `max_tokens` or with nothing to learn are left out."""
    out, too_long = [], 0
    for example in examples:
        rendered = render_conversation(tokenizer, list(example.messages), train_on=example.train_on)
        if len(rendered.input_ids) > max_tokens:
            too_long += 1
        elif rendered.trained_tokens:
            out.append(rendered)
    if too_long:
        log.warning("left out %d example(s) longer than %d tokens", too_long, max_tokens)
    return out


def pack(rendered: Sequence[RenderedConversation], row_tokens: int) -> list[dict[str, list[int]]]:
    """Whole examples packed into rows of at most `row_tokens` (first fit, longest first); positions restart."""
    rows: list[dict[str, list[int]]] = []
    for item in sorted(rendered, key=lambda r: -len(r.input_ids)):
        size = len(item.input_ids)
        row = next((r for r in rows if len(r["input_ids"]) + size <= row_tokens), None)
        if row is None:
            row = {"input_ids": [], "labels": [], "position_ids": []}
            rows.append(row)
        row["input_ids"] += item.input_ids
        row["labels"] += item.labels
        row["position_ids"] += list(range(size))
    return rows


def unpacked(rendered: Sequence[RenderedConversation]) -> list[dict[str, list[int]]]:
    """One example per row (what a plain Trainer set-up feeds)."""
    return [_row(r) for r in rendered]


def grouped(rendered: Sequence[RenderedConversation], batch_tokens: int) -> list[dict[str, list[dict[str, list[int]]]]]:
    """Examples of similar length in batches of at most `batch_tokens` once padded to the longest (an example
    longer than that is a batch alone). Each item is a whole batch: `{"rows": [...]}`, shortest first."""
    batches: list[list[dict[str, list[int]]]] = []
    for item in sorted(rendered, key=lambda r: len(r.input_ids)):
        size = len(item.input_ids)
        if batches and (len(batches[-1]) + 1) * size <= batch_tokens:
            batches[-1].append(_row(item))
        else:
            batches.append([_row(item)])
    return [{"rows": rows} for rows in batches]


def layout_rows(rendered: Sequence[RenderedConversation], config: SFTConfig) -> list[dict[str, Any]]:
    """The Trainer's dataset items for `config.layout` (a grouped item is a batch; see `RowCollator`)."""
    if config.layout == "grouped":
        return grouped(rendered, config.batch_tokens)
    return pack(rendered, config.row_tokens) if config.layout == "packed" else unpacked(rendered)


def rows_of(items: Sequence[dict[str, Any]]) -> list[dict[str, list[int]]]:
    """The rows of a batch of dataset items (an item of the grouped layout holds several)."""
    return [row for item in items for row in item.get("rows", [item])]


def _row(item: RenderedConversation) -> dict[str, list[int]]:
    return {"input_ids": item.input_ids, "labels": item.labels, "position_ids": list(range(len(item.input_ids)))}


class RowCollator:
    """Pads rows at the right to the longest of the batch (items of the grouped layout are whole batches).

    Padding positions keep counting from the row's last one, so a row of one example still reads as one
    sequence and needs no mask (causal attention never lets a real token see the padding after it); a packed
    row's block-diagonal mask comes from its restarting positions. Padding has no loss."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = rows_of(items)
        width = max(len(r["input_ids"]) for r in rows)
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
        for row in rows:
            gap, last = width - len(row["input_ids"]), row["position_ids"][-1]
            batch["input_ids"].append(row["input_ids"] + [self.pad_id] * gap)
            batch["labels"].append(row["labels"] + [IGNORE_INDEX] * gap)
            batch["position_ids"].append(row["position_ids"] + list(range(last + 1, last + 1 + gap)))
        return {key: torch.tensor(value) for key, value in batch.items()}


# --- the Trainer --------------------------------------------------------------------------------------------


def _trainer_class() -> type:
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    class PackedTrainer(Trainer):
        """A Trainer whose loss reads logits only where a token is learned."""

        model_accepts_loss_kwargs = True  # the loss below is normalised by the tokens of the whole accumulation

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"]
            keep = torch.zeros_like(labels, dtype=torch.bool)
            keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
            outputs = model(input_ids=inputs["input_ids"], position_ids=inputs["position_ids"], use_cache=False,
                            logits_to_keep=keep)
            targets = labels[:, 1:][labels[:, 1:] != IGNORE_INDEX]
            logits = outputs.logits.reshape(-1, outputs.logits.shape[-1]).float()
            total = F.cross_entropy(logits, targets, reduction="sum")
            count = num_items_in_batch if num_items_in_batch is not None else targets.numel()
            loss = total / max(int(count), 1)
            return (loss, outputs) if return_outputs else loss

    return PackedTrainer


def training_arguments(output_dir: Path, config: SFTConfig, *, has_dev: bool, use_cuda: bool) -> Any:
    from transformers import TrainingArguments

    evaluate = "steps" if has_dev else "no"
    return TrainingArguments(
        output_dir=str(output_dir), num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.lr, lr_scheduler_type="cosine", warmup_steps=config.warmup_ratio,
        per_device_train_batch_size=config.batch_rows, per_device_eval_batch_size=config.batch_rows,
        gradient_accumulation_steps=config.grad_accum, eval_strategy=evaluate, eval_steps=config.eval_every,
        save_strategy="steps", save_steps=config.eval_every, save_total_limit=2,
        load_best_model_at_end=has_dev, metric_for_best_model="eval_loss", greater_is_better=False,
        logging_steps=max(1, config.eval_every // 5), report_to="none", seed=config.seed, data_seed=config.seed,
        remove_unused_columns=False, prediction_loss_only=True, bf16=use_cuda, use_cpu=not use_cuda,
        dataloader_num_workers=0, disable_tqdm=False,
    )


def train_sft(
    train: Sequence[Example],
    dev: Sequence[Example],
    *,
    base_dir: Path,
    base_name: str,
    out_dir: Path,
    checkpoint_dir: Path,
    config: SFTConfig,
    data_files: Sequence[dict[str, Any]] = (),
    resume: bool = False,
    sources: dict[str, Any] | None = None,
    threads: int | None = None,
    resume_command: str | None = None,
) -> SFTResult:
    """Fine-tune a LoRA adapter on `train`, pick the checkpoint with the best dev loss, write it with its card."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback, set_seed

    from assistant.generation import cpu_threads

    if not train:
        raise TrainingDataError("no training examples left: give transcripts with assistant replies, an index, "
                                "or more data")
    use_cuda = torch.cuda.is_available()
    if not use_cuda:
        torch.set_num_threads(threads or cpu_threads())
    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    train_rows_raw = render(train, tokenizer, config.max_tokens)
    dev_rows_raw = render(dev, tokenizer, config.max_tokens)
    if not train_rows_raw:
        raise TrainingDataError(f"every training example is longer than --max-tokens {config.max_tokens} or has no "
                                "assistant reply to learn")
    # dev examples one at a time: the Trainer averages the dev loss per item, and an item of the grouped layout
    # holds anything from one long example to twenty short ones (each dev example weighs the same this way)
    train_rows, dev_rows = layout_rows(train_rows_raw, config), unpacked(dev_rows_raw)
    trained_tokens = sum(r.trained_tokens for r in train_rows_raw)
    total_tokens = sum(len(r.input_ids) for r in train_rows_raw)
    log.info("%d train examples (%d tokens, %d learned) in %d %s batches; %d dev examples", len(train_rows_raw),
             total_tokens, trained_tokens, len(train_rows), config.layout, len(dev_rows_raw))

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model.config.use_cache = False
    lora = LoraConfig(task_type="CAUSAL_LM", r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules))
    model = get_peft_model(model, lora)
    check_space({checkpoint_dir: checkpoint_bytes_of_adapter(model) * KEPT_CHECKPOINTS, out_dir: 50 << 20})
    resume_from = checkpoint_to_resume(checkpoint_dir, resume)
    batches = {key: getattr(config, key) for key in ("layout", "batch_tokens", "row_tokens", "batch_rows",
                                                      "grad_accum", "max_tokens")}
    identity = {"data": [f.get("sha256") for f in data_files], "base": str(base_dir), "batches": batches,
                "config": asdict(config)}
    if resume_from:  # the same batches, or the Trainer would skip the wrong ones on resuming
        resumed_run(checkpoint_dir, {key: identity[key] for key in ("data", "base", "batches")})
    else:
        write_run_record(checkpoint_dir, json.loads(json.dumps(identity, default=str)))
    args = training_arguments(checkpoint_dir, config, has_dev=bool(dev_rows), use_cuda=use_cuda)
    callbacks = [EarlyStoppingCallback(config.patience)] if dev_rows and config.patience else []
    trainer = _trainer_class()(model=model, args=args, train_dataset=train_rows, eval_dataset=dev_rows or None,
                               data_collator=RowCollator(tokenizer.pad_token_id or tokenizer.eos_token_id),
                               callbacks=callbacks)
    dev_before = trainer.evaluate()["eval_loss"] if dev_rows and not resume_from else None
    started = time.perf_counter()
    result = fit(trainer, resume_from, checkpoint_dir, resume_command or "the same command with --resume")
    runtime = time.perf_counter() - started
    dev_after = trainer.evaluate()["eval_loss"] if dev_rows else None
    metrics = {
        "train_loss": round(float(result.training_loss), 4), "steps": int(result.global_step),
        "train_examples": len(train_rows_raw), "dev_examples": len(dev_rows_raw), "train_tokens": total_tokens,
        "learned_tokens": trained_tokens, "runtime_s": round(runtime, 1),
        "tokens_per_s": round(result.global_step * config.grad_accum * config.batch_rows * total_tokens
                              / max(len(train_rows), 1) / max(runtime, 1e-9), 1),
        "dev_loss_before": _rounded(dev_before), "dev_loss": _rounded(dev_after),
        "dev_perplexity": round(math.exp(dev_after), 3) if dev_after is not None else None,
    }
    save_adapter(trainer.model, out_dir, base_dir=base_dir, base_name=base_name, config=config, metrics=metrics,
                 data_files=data_files, sources=sources or {})
    shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the adapter is complete; its checkpoints are not needed
    return SFTResult(out_dir, metrics)


def checkpoint_bytes_of_adapter(model: Any) -> int:
    """One checkpoint of a LoRA run: the trainable weights and AdamW's two moments."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad) * (4 + ADAM_BYTES_PER_PARAM)


def _rounded(value: float | None) -> float | None:
    return round(float(value), 4) if value is not None else None


def save_adapter(model: Any, out_dir: Path, *, base_dir: Path, base_name: str, config: SFTConfig,
                 metrics: dict[str, Any], data_files: Sequence[dict[str, Any]], sources: dict[str, Any]) -> None:
    """peft adapter (weights in `config.save_dtype`) + `card.json`, renamed into place in one step."""
    import torch
    from safetensors.torch import load_file, save_file

    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp)
        weights = tmp / "adapter_model.safetensors"
        tensors = {k: v.to(getattr(torch, config.save_dtype)).contiguous() for k, v in load_file(weights).items()}
        save_file(tensors, weights, metadata={"format": "pt"})
        (tmp / "README.md").unlink(missing_ok=True)  # peft's template card; ours is card.json
        card = new_card(out_dir.name, "adapter", base={"path": base_name, "sha256": model_fingerprint(base_dir)},
                        data=list(data_files), config={**asdict(config), "target_modules": list(config.target_modules),
                                                       "prompt_version": PROMPT_VERSION, "sources": sources},
                        metrics=metrics, prompt_version=PROMPT_VERSION, files=folder_checksums(tmp))
        write_card(tmp, card)
    log.info("saved adapter %s (%.1f MB)", out_dir, sum(p.stat().st_size for p in out_dir.iterdir()) / 1e6)


def merge_adapter(base_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """A full model folder with the adapter merged into the base weights (serves without peft)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    with atomic_directory(out_dir) as tmp:
        merged.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(base_dir).save_pretrained(tmp)
        base = {"path": str(base_dir), "sha256": model_fingerprint(base_dir)}
        write_card(tmp, new_card(out_dir.name, "model", base=base,
                                 config={"merged_adapter": str(adapter_dir),
                                         "adapter_sha256": sha256_file(adapter_dir / "adapter_model.safetensors")}))
    return out_dir
