"""Knowledge gaps: the questions the assistant declined or that got a thumbs-down, grouped by topic.

Each group says how often it was asked, shows examples and names the closest article, so the team
knows which article to write (or fix) next. Questions are embedded with the index's own embedder and
grouped by scikit-learn's agglomerative clustering (average linkage on cosine distance, cut at a
fixed distance, so the number of groups follows the data rather than being guessed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.evaluation.logs import DECLINED_REASONS, Activity, ConversationLog
from knowledge.retriever import Retriever

CLUSTER_DISTANCE = 0.5
"""Cosine distance at which groups stop merging: chosen on a sample of the Banking77 *training* split
(questions with the same intent should share a group), see benchmarks/knowledge_gaps.py."""
MAX_GAPS = 20
EXAMPLES = 3
_POLITE = frozenset({"please", "thanks", "thank", "hi", "hello", "help", "want", "need", "know", "tell"})


@dataclass(frozen=True)
class GapQuestion:
    """A customer question the assistant could not serve well."""

    text: str
    conversation_id: str
    message_id: int
    why: str
    """`declined` (the reply's reason code says the knowledge was missing) or `thumbs_down`."""


def gap_questions(conversations: Sequence[ConversationLog]) -> list[GapQuestion]:
    """The questions behind declined or thumbs-down bot replies, each once."""
    found: dict[int, GapQuestion] = {}
    for conversation in conversations:
        asked = {m.id: m for m in conversation.customer_messages}
        for reply in conversation.replies:
            declined = reply.reason_code in DECLINED_REASONS
            disliked = conversation.ratings.get(reply.id) == -1
            question = asked.get(reply.reply_to)
            if question is not None and question.id is not None and (declined or disliked) \
                    and question.id not in found:
                found[question.id] = GapQuestion(question.content, conversation.conversation_id, question.id,
                                                 "declined" if declined else "thumbs_down")
    return list(found.values())


def knowledge_gaps(activity: Activity, retriever: Retriever, *, distance: float = CLUSTER_DISTANCE,
                   limit: int = MAX_GAPS) -> list[dict[str, Any]]:
    """Groups of gap questions, largest first: topic words, count, examples and the closest article."""
    questions = gap_questions(activity.conversations)
    if not questions:
        return []
    vectors = retriever.embedder.encode([q.text for q in questions])
    labels = cluster(vectors, distance)
    gaps = []
    for label, count in Counter(labels).most_common(limit):
        members = [i for i, found in enumerate(labels) if found == label]
        centre = vectors[members].mean(axis=0)
        ordered = sorted(members, key=lambda i: -float(vectors[i] @ centre))  # most typical first
        examples = list(dict.fromkeys(questions[i].text for i in ordered))[:EXAMPLES]
        hits = retriever.search(examples[0], k=1)
        gaps.append({
            "topic": topic_words([questions[i].text for i in members]),
            "count": count,
            "declined": sum(questions[i].why == "declined" for i in members),
            "thumbs_down": sum(questions[i].why == "thumbs_down" for i in members),
            "examples": examples,
            "closest_article": {"doc_id": hits[0].doc_id, "title": hits[0].title,
                                "confidence": round(float(hits[0].confidence), 3)} if hits else None,
        })
    return gaps


def cluster(vectors: np.ndarray, distance: float = CLUSTER_DISTANCE) -> list[int]:
    """A group label per vector: average-linkage agglomerative clustering on cosine distance."""
    if len(vectors) == 1:
        return [0]
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, metric="cosine",
                                    linkage="average")
    return [int(label) for label in model.fit_predict(vectors)]


def topic_words(texts: Sequence[str], count: int = 3) -> str:
    """The group's most frequent content words, as a short topic name."""
    import re

    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = Counter(word for text in texts for word in set(re.findall(r"[a-z][a-z0-9-]+", text.lower()))
                    if word not in ENGLISH_STOP_WORDS and word not in _POLITE and len(word) > 2)
    return ", ".join(word for word, _ in words.most_common(count)) or texts[0][:40]
