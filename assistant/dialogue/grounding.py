"""Is the reply supported by the passages? A cheap, measurable check on CPU.

Support test for one sentence (written down so the metric can be quoted). The sentence is checked
against the passages it cites with [n], or against all passages of the prompt when it cites none:
1. Every fact in it — numbers (digits or number words), prices, percentages, time windows, URLs,
   e-mail addresses — occurs as a whole token among the facts of those passages.
2. At least half of its content words occur in one of those passages, or (when an embedder is
   given) its embedding is close to one of their sentences (cosine ≥ `min_similarity`).
3. Its polarity agrees: a sentence with a negation ("not", "no", "never", "can't") needs a
   negation in the passage sentence it overlaps most, and a sentence without one needs none there.
A sentence that claims nothing checkable (no fact and fewer than three content words, such as
"Happy to help!") is not counted. Groundedness of a reply = supported / counted sentences.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from assistant.guards import EMAIL

CITATION_MARKER = re.compile(r"\[(\d{1,2})\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")
_URL = re.compile(r"https?://[^\s)\]>\"']+|www\.[^\s)\]>\"']+|\b[\w.-]+\.(?:com|org|net|io|example)(?:/[^\s)\]]*)?",
                  re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])[$€£]?\d+(?:[.,:]\d+)*%?")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d{1,2}[.)])\s+")
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fourteen": "14", "fifteen": "15", "twenty": "20",
    "thirty": "30", "forty": "40", "forty-five": "45", "fifty": "50", "sixty": "60", "ninety": "90",
    "hundred": "100", "once": "1", "twice": "2",
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_NEGATIONS_TEXT = """
not no never cannot can't don't doesn't isn't aren't won't wasn't weren't nothing none neither nor without n't
"""
NEGATIONS = frozenset(_NEGATIONS_TEXT.split())
_STOP_WORDS_TEXT = """
a an the and or but if then so of to in on at by for with from as is are was were be been being it its this that
these those you your yours we our us i me my he she they them their there here what which who whom how when where
why can could will would should may might must do does did done have has had yes please just also any all
some more most very up out about into over after before than too only own same such both each few other off again
further s t let get got
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def split_sentences(text: str) -> list[str]:
    """Sentences and list items of a reply, citation markers kept."""
    parts: list[str] = []
    for part in (p.strip() for p in _SENTENCE.split(text) if p and p.strip()):
        if parts and re.fullmatch(r"\d{1,2}[.)]", parts[-1]):  # "2." cut off from its list item
            parts[-1] = f"{parts[-1]} {part}"
        else:
            parts.append(part)
    return parts


def fact_tokens(text: str) -> set[str]:
    """Checkable facts: URLs, e-mails and numbers (number words as digits; a price keeps its currency sign).

    A list item's own number ("1. Open the app") is not a fact.
    """
    text = CITATION_MARKER.sub(" ", text)
    facts = {m.lower() for m in EMAIL.findall(text)}
    text = EMAIL.sub(" ", text)
    facts |= {m.lower().rstrip(".,;:") for m in _URL.findall(text)}
    text = _URL.sub(" ", text)
    text = _NUMBER_WORD.sub(lambda m: _NUMBER_WORDS[m.group(1).lower()], text)
    for line in text.splitlines():
        line = _LIST_MARK.sub(" ", line)
        for match in _NUMBER.finditer(line):
            facts.add(match.group().rstrip(".,;:").replace(",", ""))
    return facts


def strip_citations(text: str) -> str:
    """The text without its [n] markers (what evaluation compares with reference answers)."""
    return re.sub(r"\s*" + CITATION_MARKER.pattern, "", text).strip()


def content_words(text: str) -> set[str]:
    """Lower-cased words of a text without stop words and citation markers."""
    return {w for w in _WORD.findall(CITATION_MARKER.sub(" ", text.lower())) if w not in STOP_WORDS and len(w) > 1}


def negated(words: set[str]) -> bool:
    """True when the words contain a negation."""
    return any(w in NEGATIONS or w.endswith("n't") for w in words)


@dataclass(frozen=True)
class SentenceCheck:
    """The verdict on one sentence of a reply."""
    text: str
    checkable: bool
    supported: bool
    missing_facts: tuple[str, ...] = ()
    passage: int | None = None
    """0-based index of the passage that supports it."""


@dataclass
class GroundingReport:
    """Per-sentence verdicts and the reply rebuilt from the supported ones."""

    sentences: list[SentenceCheck] = field(default_factory=list)

    @property
    def checked(self) -> list[SentenceCheck]:
        return [s for s in self.sentences if s.checkable]

    @property
    def groundedness(self) -> float | None:
        checked = self.checked
        return sum(s.supported for s in checked) / len(checked) if checked else None

    @property
    def supported_text(self) -> str:
        return " ".join(s.text for s in self.sentences if s.supported or not s.checkable).strip()

    @property
    def has_supported_fact(self) -> bool:
        return any(s.checkable and s.supported for s in self.sentences)

    @property
    def supporting_passages(self) -> list[int]:
        """0-based indexes of the passages that support a kept sentence, in order of first use."""
        return list(dict.fromkeys(s.passage for s in self.sentences if s.supported and s.passage is not None))


Embed = Callable[[list[str]], np.ndarray]
"""Texts to L2-normalised vectors (the retriever's embedder)."""


@dataclass(frozen=True)
class _Passage:
    facts: frozenset[str]
    words: frozenset[str]
    sentences: tuple[frozenset[str], ...]
    texts: tuple[str, ...]


def _prepare(passage: str) -> _Passage:
    lines = [_LIST_MARK.sub("", line).replace("**", "").strip() for line in passage.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    texts = tuple(split_sentences(" ".join(lines)))
    sentences = tuple(frozenset(content_words(s)) for s in texts)
    return _Passage(frozenset(fact_tokens(passage)), frozenset(content_words(passage)), sentences, texts)


class _SentenceVectors:
    """Embeddings of every passage sentence, computed once per reply and only when needed."""

    def __init__(self, prepared: Sequence[_Passage], embed: Embed | None) -> None:
        self.prepared, self.embed = prepared, embed
        self._vectors: np.ndarray | None = None
        self.owner = [(i, j) for i, p in enumerate(prepared) for j in range(len(p.texts))]

    def best(self, text: str, candidates: Sequence[int]) -> tuple[float, int | None, int | None]:
        """(cosine, passage, sentence) of the passage sentence closest to `text` among `candidates`."""
        if self.embed is None or not self.owner:
            return 0.0, None, None
        if self._vectors is None:
            self._vectors = self.embed([self.prepared[i].texts[j] for i, j in self.owner])
        scores = self._vectors @ self.embed([text])[0]
        allowed = set(candidates)
        ranked = [(float(score), i, j) for score, (i, j) in zip(scores, self.owner, strict=True) if i in allowed]
        return max(ranked, default=(0.0, None, None))


def check_reply(reply: str, passages: Sequence[str], min_overlap: float = 0.5, embed: Embed | None = None,
                min_similarity: float = 0.7) -> GroundingReport:
    """Check every sentence of `reply` against the passages (see the module docstring)."""
    prepared = [_prepare(p) for p in passages]
    vectors = _SentenceVectors(prepared, embed)
    report = GroundingReport()
    for sentence in split_sentences(reply):
        cited = [int(n) - 1 for n in CITATION_MARKER.findall(sentence) if 1 <= int(n) <= len(prepared)]
        candidates = cited or list(range(len(prepared)))
        facts = fact_tokens(sentence)
        words = content_words(sentence)
        checkable = bool(facts) or len(words) >= 3
        known = frozenset().union(*(prepared[i].facts for i in candidates)) if candidates else frozenset()
        missing = tuple(sorted(facts - known))
        best, overlap = None, 0.0
        for i in candidates:
            share = len(words & prepared[i].words) / len(words) if words else 1.0
            if share > overlap:
                best, overlap = i, share
        supported = bool(not missing and best is not None and overlap >= min_overlap
                         and _same_polarity(words, prepared[best]))
        if not supported and not missing and checkable and embed is not None:
            similarity, passage, index = vectors.best(_LIST_MARK.sub("", sentence), candidates)
            if similarity >= min_similarity and negated(words) == negated(set(prepared[passage].sentences[index])):
                supported, best = True, passage
        report.sentences.append(SentenceCheck(sentence, checkable, supported or not checkable, missing,
                                              best if supported else None))
    return report


def _same_polarity(words: set[str], passage: _Passage) -> bool:
    closest = max(passage.sentences, key=lambda s: len(words & s), default=frozenset())
    return negated(words) == negated(set(closest))


def extractive_answer(question: str, passages: Sequence[str], max_sentences: int = 2, min_coverage: float = 0.5,
                      embed: Embed | None = None, min_similarity: float = 0.5) -> tuple[int, str] | None:
    """(passage index, its sentences closest to the question), or None when no sentence is close enough.

    Close enough: it covers `min_coverage` of the question's content words, or (with an embedder) its
    cosine to the question is at least `min_similarity`. Quoting an unrelated sentence is no answer.
    """
    prepared = [_prepare(p) for p in passages]
    wanted = content_words(question) - NEGATIONS
    best: tuple[float, int, int] | None = None
    for i, passage in enumerate(prepared):
        for j, words in enumerate(passage.sentences):
            coverage = len(wanted & words) / (len(wanted) or 1)
            if coverage > 0 and (best is None or coverage > best[0]):
                best = (coverage, i, j)
    if best is None or best[0] < min_coverage:
        similarity, i, j = _SentenceVectors(prepared, embed).best(question, range(len(prepared)))
        best = (1.0, i, j) if i is not None and similarity >= min_similarity else None
    if best is None:
        return None
    _, i, j = best
    return i, " ".join(prepared[i].texts[j : j + max_sentences])
