"""A training run's checkpoint folder (`<data dir>/checkpoints/<name>/`): resume, Ctrl-C and disk space.

The Trainer writes `checkpoint-<step>/` folders there; `run.json` records what the run trains on, so
a resume with other data or another model is refused instead of silently mixing the two. The first
Ctrl-C asks the Trainer to save a checkpoint at the end of the step and stop; a second stops at once.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from assistant.errors import AssistantError, ConfigError

log = logging.getLogger(__name__)

RUN_RECORD = "run.json"
KEPT_CHECKPOINTS = 2
ADAM_BYTES_PER_PARAM = 8  # two float32 moments per parameter in every checkpoint
SPACE_MARGIN = 64 << 20


class TrainingInterrupted(AssistantError):
    """Training stopped before the end (Ctrl-C); the last checkpoint can be resumed."""


class NotEnoughDisk(AssistantError):
    """Too little free space for the checkpoints or the model; nothing was written."""


def last_checkpoint(folder: Path) -> Path | None:
    """The `checkpoint-<step>` folder with the highest step, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    return Path(last) if last else None


def step_of(checkpoint: Path | None) -> int | None:
    """The optimizer step a `checkpoint-<step>` folder was saved at."""
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else None


def checkpoint_to_resume(folder: Path, resume: bool) -> Path | None:
    """The checkpoint `--resume` continues from; a fresh start refuses to run over an unfinished run."""
    last = last_checkpoint(folder)
    if resume:
        if last is None:
            raise ConfigError(f"--resume: no checkpoint in {folder}; run without --resume to start")
        log.info("resuming from %s", last)
        return last
    if last is not None:
        raise ConfigError(f"{folder} holds checkpoints of an unfinished run named {folder.name!r}: pass --resume to "
                          "continue it, or delete that folder to start over")
    return None


def write_run_record(folder: Path, record: dict[str, Any]) -> None:
    """Record what this run trains on (and figures measured before training) beside its checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def resumed_run(folder: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """The record of the run being resumed; every key of `identity` must be as it was."""
    try:
        recorded = json.loads((folder / RUN_RECORD).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"--resume: {folder / RUN_RECORD} is missing or unreadable ({err}); "
                          "delete that folder to start over") from err
    changed = [key for key, value in identity.items() if recorded.get(key) != value]
    if changed:
        raise ConfigError(f"--resume: the {', '.join(changed)} differ from the run in {folder}; resume with the same "
                          "data and model, or delete that folder to start over")
    return recorded


def interrupted_message(folder: Path, resume_command: str, what: str = "stopped") -> str:
    """What was kept after a stop, and the command that goes on from there."""
    last = last_checkpoint(folder)
    kept = f"checkpoint {last} is kept" if last else "no checkpoint was saved yet"
    return f"{what}: {kept}; the model folder of an earlier run, if any, is unchanged. Resume with: {resume_command}"


class StopOnInterrupt(TrainerCallback):
    """Once `requested`, the Trainer saves a checkpoint at the end of the step and stops."""

    def __init__(self) -> None:
        self.requested = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
        return control


@contextmanager
def interrupt_requests_stop(stop: StopOnInterrupt) -> Iterator[None]:
    """While training, the first Ctrl-C asks for a clean stop; a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return

    def request(signum, frame) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        log.warning("Ctrl-C: saving a checkpoint at the end of this step, then stopping (Ctrl-C again: stop now)")

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def parameter_bytes(model) -> int:
    """Bytes of a model's weights as saved (tied weights once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def checkpoint_bytes(model) -> int:
    """Bytes of one Trainer checkpoint: the weights and AdamW's two moments."""
    return parameter_bytes(model) + sum(p.numel() for p in model.parameters()) * ADAM_BYTES_PER_PARAM


def check_space(needs: dict[Path, int]) -> None:
    """Fail before writing when a disk lacks room for what goes there (needs on one disk add up)."""
    by_disk: dict[int, tuple[Path, int]] = {}
    for where, need in needs.items():
        existing = next(p for p in (where, *where.parents) if p.exists())
        shown, total = by_disk.get(existing.stat().st_dev, (existing, 0))
        by_disk[existing.stat().st_dev] = (shown, total + need + SPACE_MARGIN)
    for shown, need in by_disk.values():
        free = shutil.disk_usage(shown).free
        if free < need:
            raise NotEnoughDisk(
                f"not enough disk space in {shown}: about {need / 1e9:.2f} GB is needed there for the model and its "
                f"checkpoints, {free / 1e9:.2f} GB is free. Free some space or set ASSISTANT_DATA_DIR to a larger "
                "disk; nothing was written and the previous model, if any, is unchanged")


def fit(trainer: Any, resume_from: Path | None, checkpoints: Path, resume_command: str) -> Any:
    """Run the Trainer; Ctrl-C ends in a checkpoint and a TrainingInterrupted naming the resume command."""
    stop = StopOnInterrupt()
    trainer.add_callback(stop)
    try:
        with interrupt_requests_stop(stop):
            output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except KeyboardInterrupt:
        raise TrainingInterrupted(interrupted_message(checkpoints, resume_command, "stopped at once")) from None
    if stop.requested:
        raise TrainingInterrupted(interrupted_message(checkpoints, resume_command))
    return output


def model_fingerprint(model_dir: Path) -> str:
    """SHA-256 over a model folder's weight files (what an adapter or a continued model was trained on)."""
    import hashlib

    from knowledge.artifacts import sha256_file

    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).glob("*.safetensors")) or sorted(Path(model_dir).glob("*.bin")):
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()
