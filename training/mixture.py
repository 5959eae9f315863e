"""The data of one fine-tuning run: examples from every source, test questions removed, split, written down.

The examples a run trained on are written to `<data dir>/training/<name>/{train,dev}.jsonl`, and the
adapter's card lists every input file and these two with their SHA-256 and row counts, so a run
can be audited and repeated.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.artifacts import sha256_file
from training.data import (
    ABSENT_NAMES,
    MAX_TARGET_SENTENCES,
    Example,
    ServerPrompts,
    drop_leaks,
    held_out_questions,
    pairs_from_index,
    rebuild_transcript,
    split,
)
from training.records import TrainingDataError, read_transcripts, write_jsonl

log = logging.getLogger(__name__)


@dataclass
class Mixture:
    """Where a run's examples come from."""

    transcripts: Sequence[Path] = ()
    index: str | None = None
    """Derive pairs from this index and rebuild raw transcripts into its server prompts."""
    dstc11: Path | None = None
    dstc11_limit: int = 400
    near_miss_every: int = 3
    """Every n-th derived question is also asked with its article withheld (0: no near misses)."""
    absent_name_every: int = 0
    """Every n-th article is also asked about a product the knowledge base never mentions (0: never)."""
    target_sentences: int = MAX_TARGET_SENTENCES
    """Most sentences of a derived answer (a procedure keeps all its steps)."""
    held_out: Sequence[Path] = ()
    """Test and dev sets whose questions must not be trained on (the demo ones are always included)."""
    dev_fraction: float = 0.1
    seed: int = 0
    skip_bad: bool = False
    counts: dict[str, int] = field(default_factory=dict)


def assemble(mixture: Mixture, settings: Any) -> tuple[list[Example], list[Example]]:
    """(train, dev) examples of every source, with held-out questions removed."""
    from knowledge.demo_data import TESTSET

    demo_dev = Path(TESTSET).with_name("devset.jsonl")
    held = held_out_questions([TESTSET, demo_dev, *mixture.held_out])
    transcripts = read_transcripts(list(mixture.transcripts), skip_bad=mixture.skip_bad)
    examples: list[Example] = []
    prompts = None
    if mixture.index:
        from assistant.bootstrap import open_retriever

        prompts = ServerPrompts(settings, open_retriever(settings, index=mixture.index))
        names = [n for n in ABSENT_NAMES if not any(n.lower() in q for q in held)]  # none a held-out question names
        derived = pairs_from_index(prompts, near_miss_every=mixture.near_miss_every,
                                   target_sentences=mixture.target_sentences, absent_names=names,
                                   absent_name_every=mixture.absent_name_every)
        mixture.counts["index_pairs"] = len(derived)
        examples += derived
    rebuilt = 0
    for transcript in transcripts:
        if prompts is not None and transcript.metadata.get("prompt") != "server":
            turns = rebuild_transcript(transcript, prompts)
            rebuilt += len(turns)
            examples += turns
        else:
            examples.append(Example.from_transcript(transcript, "transcripts"))
    mixture.counts["transcript_examples"] = len(examples) - mixture.counts.get("index_pairs", 0)
    if mixture.dstc11:
        from training import grounded_dialogues as dstc11

        train_turns, _held = dstc11.split_turns(dstc11.load_turns(mixture.dstc11))
        random.Random(mixture.seed).shuffle(train_turns)
        chosen = dstc11.examples(train_turns[: mixture.dstc11_limit], settings.history_messages)
        mixture.counts["dstc11"] = len(chosen)
        examples += chosen
    examples = drop_leaks(examples, held)
    if not examples:
        raise TrainingDataError("no examples to learn from: the transcripts have no usable assistant reply and no "
                                "index or other source was given")
    return split(examples, mixture.dev_fraction, mixture.seed)


def write_run_data(folder: Path, train: Sequence[Example], dev: Sequence[Example],
                   inputs: Sequence[Path] = ()) -> list[dict[str, Any]]:
    """Write the examples of a run; return the card's `data` list (inputs and the two written files)."""
    files = []
    for path in inputs:
        rows = sum(1 for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
        files.append({"path": str(path), "sha256": sha256_file(Path(path)), "rows": rows, "role": "input"})
    for name, examples in (("train", train), ("dev", dev)):
        target = folder / f"{name}.jsonl"
        rows = write_jsonl(target, (e.to_json() for e in examples))
        files.append({"path": str(target), "sha256": sha256_file(target), "rows": rows, "role": name})
    return files
