"""Intent / out-of-scope classifiers: load a saved one and predict (the fitting lives in `training.classifier`).

A classifier folder holds `card.json`, `head.safetensors` (a linear layer over mean-pooled sentence
vectors) and, when the encoder was fine-tuned, `encoder/` (a transformers model folder); a classifier
on frozen embeddings reads the base embedder named in its card. A text whose best probability is
below the card's threshold is `oos` (out of scope), with probability 1 - that best probability.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.errors import AssistantError

if TYPE_CHECKING:
    import torch

    from assistant.config import Settings

log = logging.getLogger(__name__)
OOS = "oos"
HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
RETRAIN = "train it again with `assistant train classifier --data F --out NAME`"


class ClassifierError(AssistantError):
    """A classifier that cannot be loaded (missing, not a classifier, files missing or damaged)."""


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors, padding left out (sentence-transformers' `mean` pooling)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class TextEncoder:
    """Mean-pooled (optionally L2-normalised) sentence vectors from a local transformers encoder folder."""

    def __init__(self, path: Path, *, max_length: int = 64, normalize: bool = True) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.path, self.max_length, self.normalize = Path(path), max_length, normalize
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True)
        self.model.eval()
        self.dimension = int(self.model.config.hidden_size)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """Vectors of one batch, with gradients when the model is in training mode."""
        import torch.nn.functional as F

        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        pooled = mean_pool(hidden, batch["attention_mask"])
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Vectors of many texts, batched by length (short texts pad less), in the order given."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                out[rows] = self([texts[i] for i in rows]).float().numpy()
        self.model.train(was_training)
        return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def decide(probabilities: np.ndarray, labels: Sequence[str], threshold: float) -> list[tuple[str, float]]:
    """(label, probability) per row: the most probable label, or `oos` when its probability is below `threshold`."""
    best = probabilities.argmax(axis=1)
    out = []
    for row, index in enumerate(best):
        p = float(probabilities[row, index])
        out.append((labels[index], p) if p >= threshold else (OOS, 1.0 - p))
    return out


class IntentClassifier:
    """A saved classifier: `predict(texts) -> [(label, probability)]`."""

    def __init__(self, encoder: TextEncoder, weight: np.ndarray, bias: np.ndarray, labels: Sequence[str],
                 threshold: float = 0.0, card: dict[str, Any] | None = None) -> None:
        if weight.shape != (len(labels), encoder.dimension) or bias.shape != (len(labels),):
            raise ClassifierError(f"the head ({weight.shape}) does not fit {len(labels)} labels and "
                                  f"{encoder.dimension}-dimensional vectors: {RETRAIN}")
        self.encoder, self.weight, self.bias = encoder, weight.astype(np.float32), bias.astype(np.float32)
        self.labels, self.threshold, self.card = list(labels), float(threshold), card or {}

    def probabilities(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Probability of every label (columns in `labels` order) for each text."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return softmax(self.encoder.encode(list(texts), batch_size) @ self.weight.T + self.bias)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[tuple[str, float]]:
        """(label, probability) for each text, in order; below the threshold the label is `oos`."""
        return decide(self.probabilities(texts, batch_size), self.labels, self.threshold)

    @classmethod
    def load(cls, path: Path) -> IntentClassifier:
        """The classifier saved in `path`; a missing or damaged folder is an error saying what to do."""
        from safetensors.numpy import load_file

        from knowledge.artifacts import CARD, read_card

        path = Path(path)
        if not (path / CARD).is_file():
            what = "does not exist" if not path.exists() else f"has no {CARD}, so it is not a classifier"
            raise ClassifierError(f"classifier {path} {what}: {RETRAIN}, or name an existing one")
        try:
            card = read_card(path)
            config = card["config"]
            labels, threshold = list(config["labels"]), float(config["threshold"])
            head = load_file(str(path / HEAD_FILE))
            weight, bias = head["weight"], head["bias"]
        except Exception as err:  # a truncated or foreign file fails in many ways (safetensors has its own error)
            raise ClassifierError(f"classifier {path} is damaged ({type(err).__name__}: {err}): {RETRAIN}") from err
        if card.get("kind") != "classifier":
            raise ClassifierError(f"{path} holds a {card.get('kind')!r}, not a classifier: {RETRAIN}")
        encoder = TextEncoder(_encoder_path(path, card), max_length=int(config.get("max_length", 64)),
                              normalize=bool(config.get("normalize", True)))
        return cls(encoder, weight, bias, labels, threshold, card)


def _encoder_path(path: Path, card: dict[str, Any]) -> Path:
    """The fine-tuned encoder inside the folder, else the base embedder the card names (same weights)."""
    from knowledge.artifacts import sha256_file
    from knowledge.embedder import default_embedder_path

    if (path / ENCODER_DIR).is_dir():
        return path / ENCODER_DIR
    base = card.get("base") or {}
    for candidate in (Path(base.get("path", "")), default_embedder_path()):
        weights = candidate / "model.safetensors"
        if weights.is_file() and sha256_file(weights) == base.get("sha256"):
            return candidate
    raise ClassifierError(f"classifier {path} was fitted on the embedder {base.get('path')} (sha256 "
                          f"{str(base.get('sha256'))[:12]}…), which is not installed here: {RETRAIN}")


def open_classifier(settings: Settings, name: str | None = None) -> IntentClassifier | None:
    """The named (or configured) classifier, or None when none is configured."""
    name = name or settings.classifier
    if not name:
        return None
    return IntentClassifier.load(settings.artifact_path("classifier", name))
