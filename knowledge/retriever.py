"""Hybrid, conversation-aware search over a KnowledgeIndex.

Candidates come from embedding and BM25 search (for the conversational query and for the current
message alone) and from the entity the conversation is about; a linear ranking over their features
orders them (ranking.py). Its weights are fitted on dev questions and stored in the index card
(`assistant kb tune`); an index without them uses the default weights of ranking.py. Hits are
grouped per document (its best chunk stands for it). `Hit.confidence` is a calibrated estimate
that the document answers the question, a logistic function of the dense similarity; the abstain
decision reads it, never the ranking score.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from knowledge.documents import Hit
from knowledge.embedder import CachedEncoder, Embedder
from knowledge.entities import EntityTitles
from knowledge.index import KnowledgeIndex
from knowledge.ranking import DEFAULT_WEIGHTS, RankingWeights, Signals, candidate_features


@dataclass(frozen=True)
class RetrieverConfig:
    """Candidate depth, conversational query, entity focus and the confidence calibration."""

    candidates: int = 50
    """Chunks taken from each ranking (and from the entity in focus) before ranking."""
    query_history_turns: int = 2
    """Earlier user turns folded into the query of a follow-up question."""
    topic_switch_margin: float | None = 0.0
    """A message that neither refers back ("it", "what about ...") nor continues a conversation about a named
    entity changes the topic ("How long does standard shipping take?" after a warranty question) and is searched
    alone when its own best match is closer (by more than this dense similarity) than the conversational
    query's best, or when the conversational query's best document is no candidate for the message alone (the
    earlier turns alone brought it). None: always the conversational query. On DSTC11 validation
    (400 follow-ups, default weights) hit@5 stays 0.902 on the even half and 0.898 on the odd one."""
    focus: bool = True
    """Add the chunks of the entity the conversation is about (see entities.py) to the candidates."""
    focus_turns: int = 10
    """How many earlier turns are searched for the entity named last."""
    confidence_midpoint: float = 0.45
    """Dense similarity at which confidence is 0.5, unless the index card holds a fitted calibration."""
    confidence_slope: float = 14.0
    """Steepness of the similarity-to-confidence curve, unless the index card holds a fitted one."""
    weights: RankingWeights | None = None
    """Ranking weights that override the index card's (for comparisons); None: the card's, else the default."""


@dataclass(frozen=True)
class Candidates:
    """One query's candidate chunks (positions in the index), their raw signals and their features."""

    positions: np.ndarray
    signals: Signals
    features: np.ndarray


class Retriever:
    """`search(text, history=..., k=...)` over one index with one embedder."""

    def __init__(self, index: KnowledgeIndex, embedder: Embedder, config: RetrieverConfig | None = None) -> None:
        index.check_embedder(embedder)
        self.index = index
        self.embedder = embedder
        self.query_vectors = CachedEncoder(embedder.encode, capacity=1_024)
        """Question embeddings, cached: the evidence ranker embeds the turn's question again."""
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
        """The `k` best documents for `text` in the context of `history`, best first.

        A follow-up is searched with the conversation; when the message alone matches the knowledge base
        better than that, the conversation has changed topic and the message alone decides."""
        hits = self._ranked(text, history, k, filters)
        margin = self.config.topic_switch_margin
        if (margin is None or not hits or self.conversational_query(text, history) == text or refers_back(text)
                or (self.entities and self.entities.focus(text, history, self.config.focus_turns))):
            return hits
        alone = self._ranked(text, (), self.config.candidates * 2, filters)  # every document it is a candidate in
        if not alone:
            return hits
        # the conversational query can match the earlier turns' article best only because it holds those turns
        # ("What is your return window?" after two payment questions): the message alone finds it nowhere
        if (max(h.similarity for h in alone[:k]) > max(h.similarity for h in hits) + margin
                or hits[0].doc_id not in {h.doc_id for h in alone}):
            return alone[:k]
        return hits

    def _ranked(self, text: str, history: Sequence[Mapping[str, str]], k: int,
                filters: Mapping[str, Any] | None) -> list[Hit]:
        found = self.candidates(text, history, filters)
        scores = self.weights.score(found.features)
        best: dict[str, int] = {}
        for row in np.argsort(-scores, kind="stable"):
            doc_id = self.index.chunks[found.positions[row]].doc_id
            if doc_id not in best:
                best[doc_id] = int(row)
                if len(best) == k:
                    break
        return [self._hit(int(found.positions[row]), float(scores[row]), float(found.signals.dense[row]))
                for row in best.values()]

    @property
    def weights(self) -> RankingWeights:
        """The configured weights, else those fitted for this index (`kb tune`), else the defaults."""
        if self.config.weights is not None:
            return self.config.weights
        fitted = self.index.card.get("ranking")
        return RankingWeights.from_dict(fitted["weights"]) if fitted else DEFAULT_WEIGHTS

    def candidates(self, text: str, history: Sequence[Mapping[str, str]] = (),
                   filters: Mapping[str, Any] | None = None) -> Candidates:
        """Candidate chunks of every ranking for one question, with their features."""
        cfg, index = self.config, self.index
        query = self.conversational_query(text, history)
        vectors = self.query_vectors([query] if query == text else [query, text])
        allowed = None
        if filters:
            allowed = np.array([all(c.metadata.get(key) == value for key, value in filters.items())
                                for c in index.chunks], dtype=bool)
        depth = len(index.chunks) if filters else cfg.candidates  # a selective filter must not starve
        pool: set[int] = set()
        for ranking in index.dense_search(vectors, depth):
            pool.update(_top([p for p, _ in ranking], allowed, cfg.candidates))
        keyword = index.keyword_all_scores(query)
        keyword_text = keyword if query == text else index.keyword_all_scores(text)
        for scores in (keyword, keyword_text):
            pool.update(_top_scores(scores, allowed, cfg.candidates))
        focus = self.entities.focus(text, history, cfg.focus_turns) if cfg.focus and self.entities else []
        focus_set = set(focus)
        if focus:  # the entity's own chunks, best for the current message by meaning and by words
            members = np.array([p for p in focus if allowed is None or allowed[p]], dtype=np.int64)
            if len(members):
                similarity = index.vectors(members) @ vectors[-1]
                pool.update(int(p) for p in members[np.argsort(-similarity)[: cfg.candidates]])
                pool.update(int(p) for p in _top_scores(keyword_text, None, cfg.candidates, members))
        positions = np.array(sorted(pool), dtype=np.int64)
        stored = index.vectors(positions)
        signals = Signals(
            dense=stored @ vectors[0], dense_text=stored @ vectors[-1],
            keyword=keyword[positions].astype(np.float64), keyword_text=keyword_text[positions].astype(np.float64),
            focus=np.array([p in focus_set for p in positions], dtype=bool),
        )
        return Candidates(positions, signals, candidate_features(signals, [index.chunks[p] for p in positions]))

    def conversational_query(self, text: str, history: Sequence[Mapping[str, str]]) -> str:
        """The current message preceded by the last few user turns, so follow-ups keep their topic."""
        turns = self.config.query_history_turns
        earlier = [turn["content"] for turn in history if turn.get("role") == "user"]
        earlier = earlier[-turns:] if turns else []
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


_REFERS_BACK = re.compile(
    r"^\W*(ok(ay)?|and|also|so|then|what about|how about|for|with|without|in|on|by)\b|"
    r"\b(it|its|that|this|these|those|they|them|their|same|then|too|instead|also|either|one)\b|"
    r"(?<!\bis )(?<!\bare )(?<!\bwas )(?<!\bwere )\bthere\b", re.IGNORECASE)


def refers_back(text: str) -> bool:
    """True when a message leans on what came before ("is it open on saturday?", "what about the UK?", "for the
    UK?", "do you ship there?"); "is there a student discount?" does not."""
    return bool(_REFERS_BACK.search(text))


def _top(ranked: list[int], allowed: np.ndarray | None, n: int) -> list[int]:
    """The first `n` positions of a ranking that pass the filter."""
    return [p for p in ranked if allowed is None or allowed[p]][:n]


def _top_scores(scores: np.ndarray, allowed: np.ndarray | None, n: int, among: np.ndarray | None = None) -> list[int]:
    """Positions of the `n` highest positive scores (among `among`, passing the filter)."""
    candidates = np.flatnonzero(scores > 0) if among is None else among[scores[among] > 0]
    if allowed is not None:
        candidates = candidates[allowed[candidates]]
    if len(candidates) > n:
        candidates = candidates[np.argpartition(-scores[candidates], n - 1)[:n]]
    return [int(p) for p in candidates]
