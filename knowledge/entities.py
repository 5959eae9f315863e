"""Which documents a conversation is about: titles shared by several documents name an entity.

A help center gives each article its own title, but collections about hotels, restaurants,
products or places group many documents under one name ("Bridge Guest House": its FAQs and its
reviews). When a conversation names such an entity, follow-up questions ("do they have free
wifi?") are about it, even turns later. `EntityTitles.focus` finds the entity named most recently.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from knowledge.documents import Chunk

_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalise(text: str) -> str:
    """Lower case, `&` as `and`, punctuation as spaces, a leading `the` dropped."""
    text = _NON_WORD.sub(" ", text.lower().replace("&", " and ").replace("'", "")).strip()
    return text[4:] if text.startswith("the ") else text


class EntityTitles:
    """Aliases of titles shared by at least `min_documents` documents, mapped to their chunk positions."""

    def __init__(self, chunks: Sequence[Chunk], min_documents: int = 2) -> None:
        documents_per_title: dict[str, set[str]] = defaultdict(set)
        positions: dict[str, list[int]] = defaultdict(list)
        for position, chunk in enumerate(chunks):
            documents_per_title[chunk.title].add(chunk.doc_id)
            positions[chunk.title].append(position)
        titles = [t for t, docs in documents_per_title.items() if len(docs) >= min_documents and normalise(t)]
        generic = _generic_words(titles)
        self.positions: dict[str, list[int]] = {}
        for title in titles:
            for alias in _aliases(title, generic):
                self.positions.setdefault(alias, []).extend(positions[title])

    def __bool__(self) -> bool:
        return bool(self.positions)

    def named_in(self, text: str) -> list[str]:
        """Aliases of entities named in `text` (whole-word phrase match)."""
        padded = f" {normalise(text)} "
        return [alias for alias in self.positions if f" {alias} " in padded]

    def focus(self, text: str, history: Sequence[Mapping[str, str]], max_turns: int = 10) -> list[int]:
        """Chunk positions of the entities named most recently (this message first, then earlier turns)."""
        turns = [text, *(turn.get("content", "") for turn in reversed(history[-max_turns:]))]
        for turn in turns:
            named = self.named_in(turn)
            if named:
                return sorted({p for alias in named for p in self.positions[alias]})
        return []


def _generic_words(titles: Sequence[str]) -> set[str]:
    """Words that many entity titles share ("hotel", "restaurant", "house"): not distinctive alone."""
    counts = Counter(word for title in titles for word in set(normalise(title).split()))
    return {word for word, count in counts.items() if count >= max(3, len(titles) // 50)}


def _aliases(title: str, generic: set[str]) -> set[str]:
    """The full title and, when distinctive enough, the title without its trailing generic words."""
    full = normalise(title)
    words = full.split()
    while words and words[-1] in generic:
        words.pop()
    short = " ".join(words)
    aliases = {full}
    if short and short != full and len(short.replace(" ", "")) >= 4 and not set(words) <= generic:
        aliases.add(short)
    return aliases
