"""Causal-LM pretraining: a small Llama from scratch, or continued pretraining of the base on support text.

setup (model, tokenizer, blocks) → dev perplexity before → fit with the transformers `Trainer`
(gradient accumulation, clipping, checkpoints every N steps under `<data dir>/checkpoints/<name>/`,
resume, bf16 on GPU, `accelerate launch` / `torchrun`) → dev perplexity after → save
`models/<name>/` atomically with its card. Ctrl-C stops at the end of the current step and saves a
checkpoint there; the model folder of an earlier run is only replaced by a complete new one.
"""

from __future__ import annotations

import logging
import math
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from assistant.config import Settings
from assistant.errors import ConfigError
from knowledge.artifacts import atomic_directory, new_card, write_card
from training.corpus import BlockSplit, read_corpus, split_blocks, tokenize_documents, unigram_perplexity
from training.runs import (
    KEPT_CHECKPOINTS,
    check_space,
    checkpoint_bytes,
    checkpoint_to_resume,
    fit,
    model_fingerprint,
    parameter_bytes,
    resumed_run,
    step_of,
    write_run_record,
)

log = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, int]] = {
    # ~3M parameters with SmolLM2's 49k vocabulary (almost all of it the embedding): tests and CPU smoke runs
    "tiny": {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2},
    # ~50M parameters (25M of them the tied embedding)
    "small": {"hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 8, "num_attention_heads": 8,
              "num_key_value_heads": 4},
}
@dataclass
class PretrainConfig:
    """One pretraining run; each field but `data`/`out` is a `--flag` of `assistant train pretrain`."""

    data: list[Path]
    """Text files, folders of documents, transcript JSONL or JSONL with a "text" field."""
    out: str
    """Model name under `<data dir>/models/`, or a path."""
    from_scratch: bool = False
    """Start from a random small Llama instead of the base model."""
    preset: Literal["tiny", "small"] = "small"
    """Size of the from-scratch model: tiny ≈ 3M parameters, small ≈ 50M."""
    base: str | None = None
    """Model to continue pretraining (name or folder); default: the configured base model."""
    tokenizer: str | None = None
    """Tokenizer of a from-scratch model (name or folder); default: the base model's."""
    epochs: float = 1.0
    """Passes over the train blocks (ignored when `max_steps` is set)."""
    max_steps: int | None = None
    """Optimizer steps to take; overrides `epochs`."""
    lr: float | None = None
    """Peak learning rate (cosine decay); default 1e-3 from scratch, 5e-5 continued."""
    batch_size: int = 8
    """Blocks per device per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    block_size: int = 512
    """Tokens per training block."""
    seed: int = 0
    """Seed of the initial weights and the data order."""
    skip_bad: bool = False
    """Leave out malformed JSONL lines and unreadable files instead of stopping."""
    save_steps: int = 200
    """Save a checkpoint every this many optimizer steps."""
    eval_steps: int | None = None
    """Evaluate dev loss every this many steps; default: `save_steps`."""
    dev_fraction: float = 0.05
    """Share of documents (by text hash) held out for dev perplexity."""
    resume: bool = False
    """Continue from the last checkpoint of this run's name."""

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("--data: give at least one text file, folder or JSONL file")
        if self.preset not in PRESETS:
            raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, not {self.preset!r}")
        if self.from_scratch and self.base:
            raise ConfigError("--from-scratch and --base exclude each other: a scratch model has no base")
        if self.tokenizer and not self.from_scratch:
            raise ConfigError("--tokenizer is for --from-scratch; continued pretraining keeps the base's tokenizer")
        for name in ("batch_size", "grad_accum", "save_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("--max-steps must be at least 1")
        if self.epochs <= 0 or (self.lr is not None and self.lr <= 0):
            raise ConfigError("--epochs and --lr must be positive")
        if not 0 < self.dev_fraction < 0.5:
            raise ConfigError("--dev-fraction must lie between 0 and 0.5")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-3 if self.from_scratch else 5e-5)

    def resume_command(self) -> str:
        """The command line that continues this run from its last checkpoint."""
        parts = ["assistant", "train", "pretrain"]
        for path in self.data:
            parts += ["--data", str(path)]
        parts += ["--out", self.out]
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in ("data", "out", "resume") or value == item.default:
                continue
            flag = "--" + item.name.replace("_", "-")
            parts += [flag] if value is True else [flag, str(value)]
        return shlex.join([*parts, "--resume"])


@dataclass
class PretrainResult:
    """Where the model was written and its card (metrics included)."""

    path: Path
    card: dict[str, Any] = field(default_factory=dict)


def pretrain(config: PretrainConfig, settings: Settings, *, callbacks: Sequence[Any] = ()) -> PretrainResult:
    """Train, measure dev perplexity before and after, and write `models/<out>/` with its card."""
    import torch
    from transformers import set_seed

    from assistant.generation import cpu_threads

    target = settings.artifact_path("model", config.out)
    checkpoints = settings.data_dir / "checkpoints" / target.name
    resume_from = checkpoint_to_resume(checkpoints, config.resume)
    if not torch.cuda.is_available():
        torch.set_num_threads(cpu_threads())
    tokenizer, source = _load_tokenizer(config, settings)
    corpus = read_corpus(config.data, tokenizer, skip_bad=config.skip_bad)  # bad data fails before a model loads
    split = split_blocks(corpus.texts, tokenize_documents(corpus.texts, tokenizer), config.block_size,
                         config.dev_fraction)
    set_seed(config.seed)
    model, base = _load_model(config, tokenizer, source)
    log.info("corpus: %d documents, %d tokens; train %d blocks, dev %d blocks (%d documents) of %d tokens",
             split.documents, split.tokens, len(split.train), len(split.dev), split.dev_documents, config.block_size)
    identity = {"model": {**base, "preset": config.preset if config.from_scratch else None, "seed": config.seed},
                "data": corpus.sources, "split": {"block_size": config.block_size, "dev_fraction": config.dev_fraction}}
    recorded = resumed_run(checkpoints, identity) if resume_from is not None else None
    model_bytes = parameter_bytes(model)
    check_space({checkpoints: KEPT_CHECKPOINTS * checkpoint_bytes(model), target.parent: model_bytes})

    trainer = _trainer(config, model, tokenizer, split, checkpoints, callbacks)
    if recorded is not None:
        before = recorded["dev_perplexity_before"]
    else:
        before = dev_perplexity(trainer.model, split.dev, config.batch_size)
        if trainer.is_world_process_zero():
            write_run_record(checkpoints, {**identity, "dev_perplexity_before": before})
    log.info("dev perplexity before training: %.2f", before)

    output = fit(trainer, resume_from, checkpoints, config.resume_command())
    after = dev_perplexity(trainer.model, split.dev, config.batch_size)
    unigram = unigram_perplexity(split, len(tokenizer))
    log.info("dev perplexity after training: %.2f (before %.2f; token frequencies alone %.2f)", after, before, unigram)

    card = new_card(target.name, "model", base=base, data=corpus.sources, config={
        **_run_config(config), "learning_rate": config.learning_rate, "world_size": trainer.args.world_size,
        "device": str(trainer.args.device), "bf16": trainer.args.bf16, "architecture": _architecture(trainer.model)},
        metrics={"dev_perplexity_before": before, "dev_perplexity_after": after, "dev_perplexity_unigram": unigram,
                 **_run_metrics(trainer, output, split, resume_from)})
    if trainer.is_world_process_zero():
        _save(trainer.model, tokenizer, target, card, model_bytes)
        shutil.rmtree(checkpoints, ignore_errors=True)  # the model is complete; its checkpoints are not needed
    return PretrainResult(target, card)


def _run_metrics(trainer, output, split: BlockSplit, resume_from: Path | None) -> dict[str, Any]:
    args = trainer.args
    return {
        "train_tokens": int(split.train.size), "dev_tokens": int(split.dev.size), "corpus_tokens": split.tokens,
        "train_blocks": len(split.train), "dev_blocks": len(split.dev), "dev_documents": split.dev_documents,
        "steps": trainer.state.global_step, "epochs": round(trainer.state.epoch or 0.0, 3),
        "tokens_seen": trainer.state.global_step * args.train_batch_size * args.gradient_accumulation_steps
        * args.world_size * split.train.shape[1],
        "train_loss": output.training_loss, "train_runtime_s": round(output.metrics.get("train_runtime", 0.0), 1),
        "resumed_from_step": step_of(resume_from),
    }


def _load_tokenizer(config: PretrainConfig, settings: Settings):
    """(tokenizer, its folder): the base model's, or `--tokenizer` for a from-scratch model."""
    from transformers import AutoTokenizer

    from assistant.models import resolve_model_dir

    if config.from_scratch and config.tokenizer:
        source = settings.artifact_path("model", config.tokenizer)
    else:
        source = resolve_model_dir(settings.model_copy(update={"model": config.base}) if config.base else settings)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"the tokenizer in {source} has no end-of-text (EOS) token to put between documents")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, source


def _load_model(config: PretrainConfig, tokenizer, source: Path):
    """(model, card `base` entry): a fresh preset Llama, or the base model to continue."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if config.from_scratch:
        llama = LlamaConfig(
            vocab_size=len(tokenizer), max_position_embeddings=max(2048, config.block_size), tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, **PRESETS[config.preset])
        return LlamaForCausalLM(llama), {"path": "scratch", "sha256": None, "tokenizer": str(source)}
    model = AutoModelForCausalLM.from_pretrained(source, dtype="float32")
    context = getattr(model.config, "max_position_embeddings", None)
    if context and config.block_size > context:
        raise ConfigError(f"--block-size {config.block_size} is longer than the base model's context ({context})")
    return model, {"path": str(source), "sha256": model_fingerprint(source)}


class _BlockDataset:
    """Fixed-length blocks as causal-LM examples (the model shifts the labels itself)."""

    def __init__(self, blocks) -> None:
        import torch

        self.blocks = torch.from_numpy(blocks)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


def _trainer(config: PretrainConfig, model, tokenizer, split: BlockSplit, checkpoints: Path, callbacks):
    import torch
    from transformers import Trainer, TrainingArguments, default_data_collator

    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(checkpoints), seed=config.seed, data_seed=config.seed,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.01, max_grad_norm=1.0,
        num_train_epochs=config.epochs, max_steps=config.max_steps or -1,
        eval_strategy="steps", eval_steps=config.eval_steps or config.save_steps, prediction_loss_only=True,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=KEPT_CHECKPOINTS,
        logging_steps=10, logging_first_step=True, report_to="none", disable_tqdm=False,
        use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(), dataloader_num_workers=0,
    )
    return Trainer(model=model, args=args, data_collator=default_data_collator, processing_class=tokenizer,
                   train_dataset=_BlockDataset(split.train), eval_dataset=_BlockDataset(split.dev),
                   callbacks=list(callbacks))


def dev_perplexity(model, blocks, batch_size: int) -> float:
    """exp of the mean token loss over the dev blocks (every block predicts block_size - 1 tokens)."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(blocks), batch_size):
            batch = torch.from_numpy(blocks[start:start + batch_size]).to(model.device)
            predicted = batch.numel() - batch.shape[0]
            total += model(input_ids=batch, labels=batch).loss.float().item() * predicted
            count += predicted
    model.train(was_training)
    return math.exp(total / count)


def _run_config(config: PretrainConfig) -> dict[str, Any]:
    values = asdict(config)
    values["data"] = [str(path) for path in config.data]
    values.pop("resume")
    return values


def _architecture(model) -> dict[str, Any]:
    keys = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "max_position_embeddings", "tie_word_embeddings")
    values = {key: getattr(model.config, key, None) for key in keys}
    values["parameters"] = sum(p.numel() for p in model.parameters())
    return values


def _save(model, tokenizer, target: Path, card: dict[str, Any], model_bytes: int) -> None:
    """The model, tokenizer and card in a temporary folder renamed over `target` once complete."""
    check_space({target.parent: model_bytes})
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_card(tmp, card)
    log.info("saved %s", target)
