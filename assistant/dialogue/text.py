"""Text pieces the turn reasons about: sentences, checkable facts, content words, negations and names."""

from __future__ import annotations

import re

from assistant.guards import EMAIL

CITATION_MARKER = re.compile(r"\[(\d{1,2})\]")
# A sentence ends at . ! or ? before a capital, a digit or a quote, but not after "a.m.", "p.m.", "e.g." or "i.e."
# ("Every day, 7 a.m. to 11 p.m. ET, including weekends." is one sentence).
_SENTENCE = re.compile(r"(?<=[.!?])(?<![ap]\.m\.)(?<![AP]\.M\.)(?<!e\.g\.)(?<!i\.e\.)"
                       r"[\"')\]]*\s+(?=[A-Z0-9\"'(\[*])|\n+")
_URL = re.compile(r"https?://[^\s)\]>\"']+|www\.[^\s)\]>\"']+|\b[\w.-]+\.(?:com|org|net|io|example)(?:/[^\s)\]]*)?",
                  re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])[$€£]?\d+(?:[.,:]\d+)*%?")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d{1,2}[.)])\s+")
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fourteen": "14", "fifteen": "15", "twenty": "20",
    "thirty": "30", "forty": "40", "forty-five": "45", "fifty": "50", "sixty": "60", "ninety": "90",
    "hundred": "100", "once": "1", "twice": "2",
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")\b", re.IGNORECASE)
# Number words that count nothing: "one" as a pronoun ("the one shown in your tracking", "which one", "one of
# our agents") and "once" as a conjunction ("Once the window has passed"; "use it once" still counts).
_NOT_A_NUMBER = re.compile(r"\b(?:(?:the|this|that|which|any|each|every|no|some|another|other|new|old|same|right|"
                           r"wrong|first|last|next) one\b(?!-)|(?<!only )(?<!just )(?<!least )(?<!exactly )"
                           r"\bone (?=of\b|another\b)|\bonce (?=(?:the|you|your|it|its|we|our|they|their|this|that|"
                           r"these|he|she|i|there|all|everything)\b))", re.IGNORECASE)
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
# A capitalised word inside a sentence (not its first word) names something: a product, a brand, a place.
_NAME = re.compile(r"(?<=[a-z0-9,;:)]\s)([A-Z][A-Za-z0-9]+(?:[ -][A-Z][A-Za-z0-9]+)*)")
_NOT_NAMES = frozenset(["I", "I'm", "I've", "I'll", "OK", "Yes", "No", "Please", "Thanks", "Note"])
_NOT_LABELS = frozenset(["important", "tip", "note", "answer", "summary", "q", "a", "warning", "example", "step",
                         "update", "reminder", "yes", "no", "result", "reason", "details", "short answer"])
# A sentence opening with a label ("Express: 1–2 business days", a table row as a sentence) names its subject.
_LEADING_LABEL = re.compile(r"^\s*(?:[-*+]\s+|\d{1,2}[.)]\s+)?([A-Z][A-Za-z0-9]*(?: [A-Z][A-Za-z0-9]*){0,3}):\s")
# A quoted or bold label ("Reset Password", **Send reset link**) names a button or a screen.
_LABEL = re.compile(r"\*\*([^*\n]{2,60})\*\*|[\"“]([^\"”\n]{2,60})[\"”]")


def split_sentences(text: str) -> list[str]:
    """Sentences and list items of a text, citation markers kept."""
    parts: list[str] = []
    for part in (p.strip() for p in _SENTENCE.split(text) if p and p.strip()):
        if parts and re.fullmatch(r"\d{1,2}[.)]", parts[-1]):  # "2." cut off from its list item
            parts[-1] = f"{parts[-1]} {part}"
        else:
            parts.append(part)
    return parts


def as_sentence(text: str) -> str:
    """The text with the end of a sentence ("Credit and debit cards: 5–10 business days" gets its full stop)."""
    text = text.strip()
    return text if re.search(r"[.!?:]$", text) else f"{text}."


def fact_tokens(text: str) -> set[str]:
    """Checkable facts: URLs, e-mails and numbers (number words as digits; a price keeps its currency sign).

    A list item's own number ("1. Open the app") is not a fact.
    """
    text = CITATION_MARKER.sub(" ", text)
    facts = {m.lower() for m in EMAIL.findall(text)}
    text = EMAIL.sub(" ", text)
    facts |= {m.lower().rstrip(".,;:") for m in _URL.findall(text)}
    text = _URL.sub(" ", text)
    text = _NUMBER_WORD.sub(lambda m: _NUMBER_WORDS[m.group(1).lower()], _NOT_A_NUMBER.sub(" ", text))
    for line in text.splitlines():
        line = LIST_MARK.sub(" ", line)
        for match in _NUMBER.finditer(line):
            facts.add(match.group().rstrip(".,;:").replace(",", ""))
    return facts


def is_contact_fact(fact: str) -> bool:
    """A fact that is a link, an e-mail address or a phone number (else a number, price, time or date)."""
    return bool(re.search(r"@|https?://|www\.|\.[a-z]{2,}(?:/|$)", fact)) or \
        (len(re.sub(r"\D", "", fact)) >= 7 and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", fact))


def names(text: str) -> set[str]:
    """Names inside a sentence, lower-cased: capitalised words ("Google Home", "Bitcoin"), quoted or bold labels
    ("Reset Password") and a label the sentence opens with ("Express: ..."). Each is a claim the evidence must
    make."""
    found = {" ".join((m.group(1) or m.group(2)).strip(" ?.!").split()).lower() for m in _LABEL.finditer(text)}
    leading = _LEADING_LABEL.match(text)
    if leading and leading.group(1).lower() not in _NOT_LABELS:
        found.add(leading.group(1).lower())
    text = CITATION_MARKER.sub(" ", _LABEL.sub(" , ", text))
    for match in _NAME.finditer(text):
        words = [w for w in re.split(r"[ -]", match.group(1)) if w not in _NOT_NAMES]
        if words:
            found.add(" ".join(words).lower())
    return found


def strip_citations(text: str) -> str:
    """The text without its [n] markers (what the customer reads and evaluation compares)."""
    return re.sub(r"[ \t]*" + CITATION_MARKER.pattern, "", text).strip()


def words_in_order(text: str) -> list[str]:
    """Lower-cased words of a text in order, citation markers left out."""
    return _WORD.findall(CITATION_MARKER.sub(" ", text.lower()))


def content_words(text: str) -> set[str]:
    """Lower-cased words of a text without stop words and citation markers."""
    return {w for w in words_in_order(text) if w not in STOP_WORDS and len(w) > 1}


def negated(words: set[str]) -> bool:
    """True when the words contain a negation."""
    return any(w in NEGATIONS or w.endswith("n't") for w in words)
