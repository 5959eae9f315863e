"""Hybrid, conversation-aware search over a KnowledgeIndex.

Dense (embedding) and keyword (BM25) rankings are fused by reciprocal rank fusion; hits are
grouped per document (its best chunk stands for it). `Hit.confidence` is a calibrated estimate
that the document answers the question, a logistic function of the best dense similarity; the
abstain decision reads it, never the fused rank score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from knowledge.documents import Hit
from knowledge.embedder import Embedder
from knowledge.entities import EntityTitles
from knowledge.index import KnowledgeIndex


@dataclass(frozen=True)
class RetrieverConfig:
    """Fusion weights, candidate depth and the confidence calibration."""

    dense_weight: float = 1.0
    """Weight of the dense ranking in reciprocal rank fusion."""
    keyword_weight: float = 1.0
    """Weight of the BM25 ranking in reciprocal rank fusion."""
    rrf_k: int = 60
    """The RRF constant: larger flattens the difference between ranks."""
    candidates: int = 50
    """Chunks taken from each ranking before fusion."""
    history_turns: int = 2
    """Earlier user turns folded into the query of a follow-up question."""
    focus_weight: float = 20.0
    """Weight of the rankings restricted to the entity the conversation is about (see entities.py)."""
    focus_turns: int = 10
    """How many earlier turns are searched for the entity named last."""
    confidence_midpoint: float = 0.45
    """Dense similarity at which confidence is 0.5, unless the index card holds a fitted calibration."""
    confidence_slope: float = 14.0
    """Steepness of the similarity-to-confidence curve, unless the index card holds a fitted one."""


class Retriever:
    """`search(text, history=..., k=...)` over one index with one embedder."""

    def __init__(self, index: KnowledgeIndex, embedder: Embedder, config: RetrieverConfig | None = None) -> None:
        index.check_embedder(embedder)
        self.index = index
        self.embedder = embedder
        self.config = config or RetrieverConfig()
        self.entities = EntityTitles(index.chunks)

    def search(
        self,
        text: str,
        *,
        history: Sequence[Mapping[str, str]] = (),
        k: int = 5,
        filters: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """The `k` best documents for `text` in the context of `history`, best first."""
        query = self.conversational_query(text, history)
        cfg = self.config
        depth = len(self.index.chunks) if filters else cfg.candidates  # a selective filter must not starve
        query_vector = self.embedder.encode([query])
        [dense] = self.index.dense_search(query_vector, depth)
        keyword = self.index.keyword_search(query, depth)
        rankings = [(cfg.dense_weight, dense), (cfg.keyword_weight, keyword)]
        focus = self.entities.focus(text, history, cfg.focus_turns) if self.entities and cfg.focus_weight else []
        if focus:  # rank the named entity's own chunks by the current message alone
            rankings += self._focused_rankings(text, focus)
        fused: dict[int, float] = {}
        for weight, ranking in rankings:
            for rank, (position, _) in enumerate(ranking, start=1):
                fused[position] = fused.get(position, 0.0) + weight / (cfg.rrf_k + rank)
        similarity = dict(dense)
        for position in fused.keys() - similarity.keys():  # found by keywords only
            similarity[position] = self.index.similarity(position, query_vector[0])
        best: dict[str, tuple[float, int]] = {}
        for position, score in fused.items():
            chunk = self.index.chunks[position]
            if filters and any(chunk.metadata.get(key) != value for key, value in filters.items()):
                continue
            if chunk.doc_id not in best or score > best[chunk.doc_id][0]:
                best[chunk.doc_id] = (score, position)
        ranked = sorted(best.values(), key=lambda item: -item[0])[:k]
        return [self._hit(position, score, similarity[position]) for score, position in ranked]

    def _focused_rankings(self, text: str, positions: list[int]) -> list[tuple[float, list[tuple[int, float]]]]:
        vector = self.embedder.encode([text])[0]
        dense = sorted(((p, self.index.similarity(p, vector)) for p in positions), key=lambda item: -item[1])
        keyword = [(p, s) for p, s in self.index.keyword_scores(text, positions) if s > 0]
        weight = self.config.focus_weight
        return [(weight * self.config.dense_weight, dense[: self.config.candidates]),
                (weight * self.config.keyword_weight, keyword[: self.config.candidates])]

    def conversational_query(self, text: str, history: Sequence[Mapping[str, str]]) -> str:
        """The current message preceded by the last few user turns, so follow-ups keep their topic."""
        earlier = [turn["content"] for turn in history if turn.get("role") == "user"]
        earlier = earlier[-self.config.history_turns :] if self.config.history_turns else []
        return " ".join([*earlier, text]).strip()

    def confidence(self, similarity: float) -> float:
        """Calibrated confidence from a dense cosine similarity (the index's fitted curve when it has one)."""
        fitted = self.index.card.get("calibration") or {}
        midpoint = fitted.get("midpoint", self.config.confidence_midpoint)
        slope = fitted.get("slope", self.config.confidence_slope)
        return 1.0 / (1.0 + math.exp(-slope * (similarity - midpoint)))

    def _hit(self, position: int, score: float, similarity: float) -> Hit:
        chunk = self.index.chunks[position]
        return Hit(
            doc_id=chunk.doc_id,
            chunk_id=chunk.id,
            title=chunk.title,
            text=chunk.text,
            source=chunk.source,
            score=score,
            confidence=self.confidence(similarity),
            metadata=chunk.metadata,
            similarity=similarity,
        )
