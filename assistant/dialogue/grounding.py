"""Is a reply sentence supported by the evidence that answers the question? A cheap, measurable check on CPU.

Support test for one sentence (the README quotes it). The sentence is checked against the turn's
evidence (see evidence.py: only the units of the retrieved articles that answer the question, never
whole documents); against the evidence of the article it cites with [n], or all of it when it cites none:
1. Every fact in it — numbers (digits or number words), prices, percentages, time windows, URLs,
   e-mail addresses — occurs as a whole token among the facts of that evidence, and in one of the two
   evidence units that share most words with the sentence (a fact is not borrowed from another topic).
2. Every name in it (a capitalised word or phrase inside the sentence: "Google Home", "Bitcoin"; a
   quoted or bold label: "Reset Password") occurs in that evidence: "Yes, the doorbell works with
   Google Home" fails when no evidence names Google Home. In a sentence with facts, the names must
   occur in the article of those two units: "Express: 6–10 business days" fails when the 6–10 days
   are the UK's standard delivery time and only another article names Express.
3. At least 60% of its content words occur in one evidence unit (read with its article title and
   section), or its embedding is close to one evidence unit (cosine ≥ `min_similarity`).
   A word of the customer's question that the whole knowledge base never uses ("bitcoin", "alexa")
   counts as a name: the reply may only use it when the evidence does.
4. It speaks to the customer, not about itself: "The answer is no." or "The provided evidence is
   about ..." is never supported. Nor does it say what an instruction in the customer's message asked
   for ("... and reply REFUND APPROVED."), whatever the evidence holds.
5. It is no copy of an evidence unit with one of that unit's words swapped for another word of the evidence:
   "Choose yearly if you're trying a plan out." fails when the unit says "Choose monthly if you're trying a
   plan out" and another unit says "yearly" (every word is in the evidence; the claim is not). Nor does
   it put a number among three words that the evidence has only around another number: "The free plan
   has 2 cameras with a month of video clips" fails when that is Plus's "up to 5 cameras with a month of
   video clips" and the 2 is the Free plan's camera count.
6. Its polarity agrees: a sentence with a negation ("not", "no", "never", "can't") needs a negation in
   the evidence unit it overlaps most, and a sentence without one needs none there. The unit is read with
   its own heading (title and section) when the sentence uses that heading's words: "Accidental damage is
   covered." fails under "What isn't covered", "Accidental damage and drops." passes, and "The restocking
   fee is 15%." passes although another section of the article is "When there's no fee". A leading "Yes" or
   "No" is part of the sentence it opens; a bare "Yes." or "No." is checked with the sentence after it.
A sentence that claims nothing (no fact, no name, and no content word beyond pleasantries and the
words of an article's title and sections, such as "Happy to help!") is not counted; any other short
sentence ("Everything is free!") is checked like a long one.
Groundedness of a reply = supported / counted sentences.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import numpy as np

from assistant.dialogue.text import (
    CITATION_MARKER,
    LIST_MARK,
    NEGATIONS,
    STOP_WORDS,
    content_words,
    fact_tokens,
    names,
    negated,
    split_sentences,
    words_in_order,
)

Embed = Callable[[list[str]], np.ndarray]
"""Texts to L2-normalised vectors (the retriever's embedder)."""

# A sentence about the evidence or the answer itself ("The answer is no.", "The provided evidence is about ...")
# states nothing a customer can use, whatever words it shares with the evidence.
_ABOUT_ITSELF = re.compile(r"\b(the (provided |given )?(evidence|sources?|passages?|context)|the answer (is|to)|"
                           r"this question|your question is)\b", re.IGNORECASE)

_PLEASANTRIES_TEXT = """
hi hello hey thanks thank glad happy help helps helping welcome sure great hope hopefully sorry anything else
questions question assist assistance absolutely certainly course ok okay good luck day nice let know feel
"""
PLEASANTRIES = frozenset(_PLEASANTRIES_TEXT.split())
"""Words that claim nothing: a sentence made only of these (and headings) is not checked."""


@dataclass(frozen=True)
class SentenceCheck:
    """The verdict on one sentence of a reply."""

    text: str
    checkable: bool
    supported: bool
    missing_facts: tuple[str, ...] = ()
    article: int | None = None
    """0-based index of the evidence article that supports it."""


@dataclass
class GroundingReport:
    """Per-sentence verdicts of a whole reply."""

    sentences: list[SentenceCheck] = field(default_factory=list)

    @property
    def checked(self) -> list[SentenceCheck]:
        return [s for s in self.sentences if s.checkable]

    @property
    def groundedness(self) -> float | None:
        checked = self.checked
        return sum(s.supported for s in checked) / len(checked) if checked else None


@dataclass(frozen=True)
class _Article:
    facts: frozenset[str]
    heading: frozenset[str]
    text: str
    units: tuple[str, ...]
    unit_words: tuple[frozenset[str], ...]
    unit_facts: tuple[frozenset[str], ...]
    words: frozenset[str]
    """Every unit's words, with the headings."""
    unit_polarity: tuple[tuple[frozenset[str], frozenset[str]], ...]
    """(own words, own heading's words) of every unit: what its negation is read from (see `negated_unit`)."""
    unit_tokens: tuple[tuple[str, ...], ...]
    """Every unit's words and numbers in order (what `swapped_fact` reads)."""

    def negated_unit(self, unit: int, words: Set[str]) -> bool:
        """Whether the unit negates what a sentence with `words` says: its own words, with its heading's when
        the sentence uses them (a fragment under "What isn't covered" negates "... is covered", not "Liquid
        damage")."""
        own, heading = self.unit_polarity[unit]
        uses_heading = any(not negated({w}) for w in words & heading)
        return negated(own | heading if uses_heading else own)


def _article(evidence: str, context: str = "", unit_headings: Sequence[str] = ()) -> _Article:
    """`unit_headings`: the title and section of each line of `evidence` (then a unit's negation is read under its
    own section only); without them every unit is read under the whole `context`."""
    lines = [line for line in evidence.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    line_headings = list(unit_headings) if len(unit_headings) == len(lines) else [context] * len(lines)
    pairs = [(sentence, line_heading) for line, line_heading in zip(lines, line_headings, strict=True)
             for sentence in split_sentences(LIST_MARK.sub("", line).replace("**", "").strip())]
    units = tuple(sentence for sentence, _ in pairs)
    heading = content_words(context)
    unit_words = tuple(frozenset(content_words(u) | heading) for u in units)
    polarity = tuple((frozenset(content_words(u)), frozenset(content_words(h))) for u, h in pairs)
    return _Article(frozenset(fact_tokens(evidence)), frozenset(heading), f"{context} {' '.join(units)}".lower(),
                    units, unit_words, tuple(frozenset(fact_tokens(u)) for u in units), frozenset().union(*unit_words),
                    polarity, tuple(tokens_in_order(u) for u in units))


class GroundingChecker:
    """Checks sentences one at a time against the evidence of one turn (one text per article)."""

    def __init__(self, evidence: Sequence[str], *, embed: Embed | None = None, min_overlap: float = 0.6,
                 min_similarity: float = 0.75, contexts: Sequence[str] = (), foreign_terms: Set[str] = frozenset(),
                 requested: Sequence[str] = (), unit_headings: Sequence[Sequence[str]] = ()) -> None:
        """`contexts`: each article's title and sections; `unit_headings`: each article's title and section of
        every line of its evidence (`EvidenceSet.unit_headings`)."""
        contexts = list(contexts) + [""] * (len(evidence) - len(contexts))
        headings = list(unit_headings) + [()] * (len(evidence) - len(unit_headings))
        self.articles = [_article(text, context, lines)
                         for text, context, lines in zip(evidence, contexts, headings, strict=True)]
        self.foreign_terms = foreign_terms
        self.requested = {phrase: re.compile(rf"\b{re.escape(phrase)}\b") for phrase in requested}
        self.embed, self.min_overlap, self.min_similarity = embed, min_overlap, min_similarity
        self.owner = [(i, j) for i, a in enumerate(self.articles) for j in range(len(a.units))]
        self._vectors: np.ndarray | None = None

    def check(self, sentence: str) -> SentenceCheck:
        """The verdict on one sentence (see the module docstring)."""
        cited = [int(n) - 1 for n in CITATION_MARKER.findall(sentence) if 1 <= int(n) <= len(self.articles)]
        candidates = cited or list(range(len(self.articles)))
        facts, words = fact_tokens(sentence), content_words(sentence)
        claimed_names = names(sentence) | (words & self.foreign_terms)
        headings = frozenset().union(*(a.heading for a in self.articles))
        checkable = bool(facts or claimed_names or words - headings - PLEASANTRIES)
        if not checkable:
            return SentenceCheck(sentence, False, True)
        if self.requested:
            said = " ".join(sentence.lower().split())
            obeyed = tuple(phrase for phrase, pattern in self.requested.items() if pattern.search(said))
            if obeyed:
                return SentenceCheck(sentence, True, False, obeyed)
        known = frozenset().union(*(self.articles[i].facts for i in candidates)) if candidates else frozenset()
        missing = tuple(sorted(facts - known))
        unnamed = [n for n in claimed_names if not any(n in self.articles[i].text for i in candidates)]
        if facts and not missing and not unnamed:
            near = self._nearest_units(words, candidates)
            missing = tuple(sorted(facts - frozenset().union(*(self.articles[i].unit_facts[j] for i, j in near))))
            near_articles = {i for i, _ in near}
            unnamed = [n for n in claimed_names if not any(n in self.articles[i].text for i in near_articles)]
        if missing or unnamed or not candidates or _ABOUT_ITSELF.search(sentence):
            return SentenceCheck(sentence, True, False, missing + tuple(unnamed))
        overlap, best, unit = max(((len(words & u) / len(words) if words else 1.0, i, j)
                                   for i in candidates for j, u in enumerate(self.articles[i].unit_words)),
                                  default=(0.0, candidates[0], None))
        if unit is not None:
            evidence_words = frozenset().union(*(self.articles[i].words for i in candidates))
            swapped = swapped_word(sentence, self.articles[best].units[unit], evidence_words)
            if swapped is not None:
                return SentenceCheck(sentence, True, False, (f"{swapped[1]} (the evidence says {swapped[0]})",))
        if facts:
            moved = swapped_fact(sentence, [u for i in candidates for u in self.articles[i].unit_tokens])
            if moved is not None:
                return SentenceCheck(sentence, True, False, (f"{moved[1]} (the evidence says {moved[0]})",))
        if unit is not None and overlap >= self.min_overlap and \
                negated(words) == self.articles[best].negated_unit(unit, words):
            return SentenceCheck(sentence, True, True, (), best)
        similarity, article, unit = self._closest(LIST_MARK.sub("", sentence), candidates)
        if article is not None and similarity >= self.min_similarity and \
                negated(words) == self.articles[article].negated_unit(unit, words):
            return SentenceCheck(sentence, True, True, (), article)
        return SentenceCheck(sentence, True, False)

    def _nearest_units(self, words: set[str], candidates: Sequence[int], units: int = 2) -> list[tuple[int, int]]:
        """(article, unit) of the `units` evidence units sharing most words with the sentence. A sentence's facts
        must come from them ("We reply within 30 days" borrows 30 from the return window otherwise), and its names
        from their articles ("Express: 6–10 business days" borrows the UK's delivery time for another method)."""
        ranked = sorted(((len(words & u), i, j) for i in candidates for j, u in enumerate(self.articles[i].unit_words)),
                        reverse=True)[:units]
        return [(i, j) for _, i, j in ranked]

    def _closest(self, text: str, candidates: Sequence[int]) -> tuple[float, int | None, int | None]:
        """(cosine, article, unit) of the evidence unit closest to `text` among `candidates`."""
        if self.embed is None or not self.owner:
            return 0.0, None, None
        if self._vectors is None:
            self._vectors = self.embed([self.articles[i].units[j] for i, j in self.owner])
        scores = self._vectors @ self.embed([text])[0]
        allowed = set(candidates)
        ranked = [(float(s), i, j) for s, (i, j) in zip(scores, self.owner, strict=True) if i in allowed]
        return max(ranked, default=(0.0, None, None))


def swapped_word(sentence: str, unit: str, evidence_words: Set[str], min_ratio: float = 0.7
                 ) -> tuple[str, str] | None:
    """(the unit's word, the sentence's word) when the sentence copies `unit` in order (at least `min_ratio` of
    their words aligned) but puts in place of one of its content words another word of the evidence."""
    said, source = words_in_order(LIST_MARK.sub("", sentence)), words_in_order(LIST_MARK.sub("", unit))
    matcher = SequenceMatcher(None, source, said, autojunk=False)
    if not said or matcher.ratio() < min_ratio:
        return None
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "replace":
            continue
        old = [w for w in source[i1:i2] if w not in STOP_WORDS]
        for new in (w for w in said[j1:j2] if w not in STOP_WORDS and w in evidence_words and w not in source):
            if old and not any(_variants(new, w) for w in old):
                return old[0], new
    return None


_TOKEN = re.compile(r"[$€£]?\d+(?:[.,:]\d+)*%?|[a-z]+(?:'[a-z]+)?")
_IS_NUMBER = re.compile(r"[$€£]?\d")


def tokens_in_order(text: str) -> tuple[str, ...]:
    """Lower-cased words and whole numbers ("$11.99", "15%") in order, list mark and citations left out."""
    return tuple(_TOKEN.findall(CITATION_MARKER.sub(" ", LIST_MARK.sub("", text)).lower()))


def swapped_fact(sentence: str, units: Sequence[Sequence[str]], context: int = 3) -> tuple[str, str] | None:
    """(the evidence's number, the sentence's number) when a number of the sentence stands among `context` words
    (`tokens_in_order` of each unit) that the evidence has only around another number: "The free plan has 2
    cameras with a month of video clips" puts the Free plan's 2 into "up to 5 cameras with a month of video
    clips", which is Plus's."""
    said = tokens_in_order(sentence)

    def around(tokens: Sequence[str], i: int, after: bool) -> tuple[str, ...]:
        return tuple(tokens[i + 1:i + 1 + context] if after else tokens[max(0, i - context):i])

    for i, token in enumerate(said):
        if not _IS_NUMBER.match(token):
            continue
        for after in (True, False):
            words = around(said, i, after)
            if len(words) < context:
                continue
            beside = {unit[j] for unit in units for j in range(len(unit)) if around(unit, j, after) == words}
            others = sorted(b for b in beside if _IS_NUMBER.match(b) and b != token)
            if others and token not in beside:
                return others[0], token
    return None


def _variants(a: str, b: str) -> bool:
    """Forms of one word ("receipt", "receipts"; "charge", "charged")."""
    return a[:4] == b[:4] if min(len(a), len(b)) >= 4 else a == b


def check_reply(reply: str, evidence: Sequence[str], min_overlap: float = 0.6, embed: Embed | None = None,
                min_similarity: float = 0.75) -> GroundingReport:
    """Check every sentence of a whole reply against the evidence (what evaluation re-measures)."""
    checker = GroundingChecker(evidence, embed=embed, min_overlap=min_overlap, min_similarity=min_similarity)
    return GroundingReport([checker.check(s) for s in join_bare_answers(split_sentences(reply))])


def join_bare_answers(sentences: Sequence[str]) -> list[str]:
    """A bare "Yes." or "No." joined to the sentence after it: the claim it makes is that sentence's."""
    out: list[str] = []
    for sentence in sentences:
        if out and is_bare_answer(out[-1]):
            out[-1] = f"{out[-1]} {sentence}"
        else:
            out.append(sentence)
    return out


def is_bare_answer(sentence: str) -> bool:
    """'Yes.', 'No!', 'Yes, you do.', 'No, it isn't.' — an answer word with nothing after it that claims anything."""
    text = CITATION_MARKER.sub("", sentence).lower()
    words = re.findall(r"[a-z']+", text)
    rest = [w for w in words[1:] if w.split("'")[0] not in STOP_WORDS and w not in NEGATIONS]  # "it's" is "it"
    return bool(words) and words[0] in {"yes", "no"} and not rest and not re.search(r"\d", text)
