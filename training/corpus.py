"""Pretraining text: documents from text files, article folders and JSONL, cut into fixed token blocks.

Inputs: text files (`.txt`, `.md` and the other knowledge formats), folders of documents (a help
center), JSONL of transcripts (`{"id", "messages"}`, rendered with the tokenizer's chat template)
or JSONL rows with a `"text"` field. Every document's tokens end with EOS; the documents of a split
are concatenated and cut into blocks of `block_size` tokens (the tail that does not fill a block is
left out). The dev split goes by a hash of each document's text, so it does not move when files
are reordered or more text is added, and a document is never in both splits.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.artifacts import folder_checksums, sha256_file
from training.records import TrainingDataError, parse_transcript, read_records

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Corpus:
    """The documents' texts, in input order, and one card entry per input (`path`, `sha256`, `rows`)."""

    texts: list[str]
    sources: list[dict[str, Any]]


@dataclass(frozen=True)
class BlockSplit:
    """Train and dev blocks, each an int64 array of shape (blocks, block_size)."""

    train: np.ndarray
    dev: np.ndarray
    documents: int
    dev_documents: int
    tokens: int
    """Tokens of all documents, EOS included, before cutting into blocks."""


def read_corpus(paths: Sequence[Path], tokenizer, *, skip_bad: bool = False) -> Corpus:
    """Every document of every input; bad JSONL lines and unreadable files raise unless `skip_bad`."""
    texts: list[str] = []
    sources: list[dict[str, Any]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise TrainingDataError(f"{path} does not exist: give text files, folders of documents or .jsonl files")
        if path.is_file() and path.suffix.lower() == ".jsonl":
            found = read_records(path, lambda row: _row_text(row, tokenizer), skip_bad=skip_bad)
            digest = sha256_file(path)
        else:
            found = _read_documents(path, skip_bad)
            digest = _folder_digest(path) if path.is_dir() else sha256_file(path)
        if not found:
            raise TrainingDataError(f"{path}: no text found in it")
        texts.extend(found)
        sources.append({"path": str(path.resolve()), "sha256": digest, "rows": len(found)})
    return Corpus(texts, sources)


def _row_text(row: dict[str, Any], tokenizer) -> str:
    """A JSONL row as text: a transcript through the chat template, or its `text` field."""
    if "messages" in row:
        return render_conversation(list(parse_transcript(row).messages), tokenizer)
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError('needs "text" (a non-empty string) or "messages" (a transcript)')
    return text


def render_conversation(messages: list[dict[str, str]], tokenizer) -> str:
    """A conversation as the model sees it when serving: the tokenizer's chat template."""
    from jinja2 import TemplateError

    if not getattr(tokenizer, "chat_template", None):
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False)
    except TemplateError as err:
        raise ValueError(f"the chat template cannot render it ({err})") from err


def _read_documents(path: Path, skip_bad: bool) -> list[str]:
    """A document file or a folder of them, read the way the knowledge base reads them."""
    from knowledge.loaders import load_documents

    loaded = load_documents([path])
    if loaded.failed and not skip_bad:
        shown = "; ".join(f"{file}: {reason}" for file, reason in loaded.failed[:5])
        raise TrainingDataError(f"{len(loaded.failed)} file(s) could not be read: {shown}. "
                                "Fix them, or pass --skip-bad to leave them out")
    for file, reason in loaded.failed:
        log.warning("skipped %s: %s", file, reason)
    return [doc.text for doc in loaded.documents]


def _folder_digest(folder: Path) -> str:
    """One SHA-256 over a folder's files (relative path and content hash of each)."""
    listing = json.dumps(folder_checksums(folder), sort_keys=True)
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def tokenize_documents(texts: Sequence[str], tokenizer) -> list[np.ndarray]:
    """Token ids of each document with EOS appended, so the model learns where a document ends."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise TrainingDataError("the tokenizer has no end-of-text (EOS) token to put between documents")
    ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    return [np.asarray([*doc, eos], dtype=np.int64) for doc in ids]


def dev_score(text: str) -> float:
    """Where a document falls in [0, 1): the dev split takes the lowest scores."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16) / 16**12


def split_blocks(texts: Sequence[str], documents: Sequence[np.ndarray], block_size: int,
                 dev_fraction: float = 0.05) -> BlockSplit:
    """Deterministic train/dev blocks: ~`dev_fraction` of the documents by hash, at least one dev block."""
    if block_size < 2:
        raise TrainingDataError("--block-size must be at least 2 tokens")
    scores = [dev_score(text) for text in texts]
    dev = {i for i, score in enumerate(scores) if score < dev_fraction}
    dev_tokens = sum(len(documents[i]) for i in dev)
    for i in sorted(range(len(texts)), key=scores.__getitem__):  # too little dev text: add the next by hash
        if dev_tokens >= block_size:
            break
        if i not in dev:
            dev.add(i)
            dev_tokens += len(documents[i])
    train = _blocks([doc for i, doc in enumerate(documents) if i not in dev], block_size)
    dev_blocks = _blocks([doc for i, doc in enumerate(documents) if i in dev], block_size)
    total = sum(len(doc) for doc in documents)
    if len(train) and len(dev_blocks):
        return BlockSplit(train, dev_blocks, len(documents), len(dev), total)
    # Too few documents to split by document (one long text file): the last blocks become dev.
    every = _blocks(list(documents), block_size)
    n_dev = max(1, round(len(every) * dev_fraction))
    if len(every) - n_dev < 1:
        raise TrainingDataError(
            f"the corpus has {total} tokens, too few for one train and one dev block of {block_size} tokens: "
            "add text or lower --block-size")
    log.warning("too few documents for a dev split by document; the last %d of %d blocks are the dev set",
                n_dev, len(every))
    return BlockSplit(every[:-n_dev], every[-n_dev:], len(documents), 0, total)


def _blocks(documents: list[np.ndarray], block_size: int) -> np.ndarray:
    if not documents:
        return np.zeros((0, block_size), dtype=np.int64)
    stream = np.concatenate(documents)
    count = len(stream) // block_size
    return stream[: count * block_size].reshape(count, block_size)


def unigram_perplexity(split: BlockSplit, vocab_size: int) -> float:
    """Dev perplexity of token frequencies on the train blocks (add-one): the floor a trained LM must beat."""
    size = max(vocab_size, int(split.train.max()) + 1, int(split.dev.max()) + 1)
    counts = np.bincount(split.train.ravel(), minlength=size).astype(np.float64) + 1.0
    log_probs = np.log(counts / counts.sum())
    return float(np.exp(-log_probs[split.dev[:, 1:].ravel()].mean()))  # the first token of a block is not predicted
