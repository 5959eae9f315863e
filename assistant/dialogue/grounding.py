"""Is the reply supported by the passages? A cheap, measurable check on CPU.

Support test for one sentence (written down so the metric can be quoted):
1. Every fact token in it — numbers, prices, percentages, time windows, URLs, e-mail addresses,
   phone numbers — occurs in one of the passages (after normalising case and separators).
2. At least half of its content words (no stop words) occur in a single passage.
A sentence that states nothing checkable (no fact token and fewer than four content words, such
as "Happy to help!") is not counted. The groundedness of a reply is supported / counted sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")
_URL = re.compile(r"https?://[^\s)\]>\"']+|www\.[^\s)\]>\"']+|\b[\w.-]+\.(?:com|org|net|io|example)(?:/[^\s)\]]*)?",
                  re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_NUMBER = re.compile(r"(?<![\w])[$€£]?\d+(?:[.,:]\d+)*%?")
_WORD = re.compile(r"[a-z0-9]+")
_MARKER = re.compile(r"\[\d{1,2}\]")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d{1,2}[.)])\s+")
_STOP_WORDS_TEXT = """
a an the and or but if then so of to in on at by for with from as is are was were be been being it its this that
these those you your yours we our us i me my he she they them their there here what which who whom how when where
why can could will would should may might must do does did done have has had not no yes please just also any all
some more most very up out about into over after before than too only own same such both each few other off again
further once s t don let get got
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


def fact_tokens(sentence: str) -> set[str]:
    """Checkable facts: URLs, e-mails, and numbers (prices, windows, steps excluded when bare list numbers)."""
    text = _MARKER.sub(" ", sentence)
    facts = {m.lower() for m in _EMAIL.findall(text)}
    text = _EMAIL.sub(" ", text)
    facts |= {_norm_fact(m) for m in _URL.findall(text)}
    without_links = _URL.sub(" ", text)
    for match in _NUMBER.finditer(without_links):
        token = match.group()
        if re.fullmatch(r"\d{1,2}[.)]?", token) and match.start() == len(without_links) - len(without_links.lstrip()):
            continue  # a list item's own number ("1. Open the app"), not a fact
        facts.add(_norm_fact(token))
    return facts


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(_MARKER.sub(" ", text.lower())) if w not in STOP_WORDS and len(w) > 1}


def _norm_fact(token: str) -> str:
    return token.lower().rstrip(".,;:").replace(",", "")


@dataclass(frozen=True)
class SentenceCheck:
    text: str
    checkable: bool
    supported: bool
    missing_facts: tuple[str, ...] = ()


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


def check_reply(reply: str, passages: Sequence[str], min_overlap: float = 0.5) -> GroundingReport:
    """Check every sentence of `reply` against the passages (see the module docstring)."""
    passage_text = " ".join(passages)
    passage_facts_text = " " + passage_text.lower().replace(",", "") + " "
    passage_words = [content_words(p) for p in passages]
    report = GroundingReport()
    for sentence in split_sentences(reply):
        facts = fact_tokens(sentence)
        words = content_words(sentence)
        checkable = bool(facts) or len(words) >= 4
        missing = tuple(sorted(f for f in facts if f not in passage_facts_text))
        overlap = max((len(words & pw) / len(words) for pw in passage_words), default=0.0) if words else 1.0
        supported = not missing and overlap >= min_overlap
        report.sentences.append(SentenceCheck(sentence, checkable, supported, missing))
    return report


def extractive_answer(question: str, passages: Sequence[str], max_sentences: int = 2,
                      min_coverage: float = 0.5) -> tuple[int, str] | None:
    """(passage index, its sentences closest to the question), or None when no sentence covers at least
    `min_coverage` of the question's content words (quoting an unrelated sentence would be no answer)."""
    wanted = content_words(question)
    best: tuple[float, int, str] | None = None
    for index, passage in enumerate(passages):
        lines = [_LIST_MARK.sub("", line).replace("**", "").strip() for line in passage.splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        sentences = split_sentences(" ".join(lines))
        for start, sentence in enumerate(sentences):
            score = len(wanted & content_words(sentence)) / (len(wanted) or 1)
            if best is None or score > best[0]:
                best = (score, index, " ".join(sentences[start : start + max_sentences]))
    if best is None or best[0] < min_coverage or best[0] == 0:
        return None
    return best[1], best[2]
