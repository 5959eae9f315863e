"""From the model's text pieces to the sentences a customer may see, one checked sentence at a time.

Nothing is shown before it passed: a sentence (or list item) is released once it is complete and
the grounding check supports it. Degenerate output never reaches the customer: a sentence that
repeats an earlier one, a raw markdown table row, a fragment cut off mid-sentence, text that is only
citation markers or a list number. Two repeats, or three unsupported sentences in a row, end the
reply early (the model is looping or has lost the evidence). Kept list items are renumbered, so
steps come out as a markdown list even when some were held back. When the evidence is a procedure,
the model's steps are held until its list is complete and shown only if they cover every step of
the article in order; otherwise the article's own steps are shown (quoted, never half a procedure).
Sentences the model writes before its steps follow them (the steps are what a "how do I" question asks
for); a reply holds one procedure, so a numbered step the model writes after it is dropped. When the
question asks for a fact (a time window, a price) that the evidence states, sentences without one are
held until a sentence with a fact of that kind is shown; when the draft never states one, the evidence
sentence that does is quoted and the held sentences follow (a reply to "What is your return window?"
never leaves out the 30 days); after a list the model wrote, the fact follows the list. A question that
names something the evidence says is handled the same way: the reply to "Can I pay with Discover?" says
"Discover". A whole reply's worth of held sentences releases them at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from assistant.dialogue.evidence import AskedFact
from assistant.dialogue.grounding import SentenceCheck, is_bare_answer
from assistant.dialogue.text import (
    CITATION_MARKER,
    LIST_MARK,
    as_sentence,
    content_words,
    fact_tokens,
    negated,
    strip_citations,
)

# A sentence ends at . ! ? before a capital, a digit, a quote or a list mark ("tap Forgot password? on the
# sign-in screen" goes on), or at a line break.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*[ \t]+(?=[A-Z0-9\"'(\[*-])|\n+")
_YES = re.compile(r"yes\b[,.!]?\s*", re.IGNORECASE)
_ONLY_NUMBER = re.compile(r"^\s*\d{1,2}[.)]?\s*$")
_NUMBERED = re.compile(r"^\s*\d{1,2}[.)]\s+")
_BULLET = re.compile(r"^\s*[-*+]\s+")
_ABBREVIATION = re.compile(r"\b(e\.g|i\.e|etc|approx|vs|a\.m|p\.m)\.$", re.IGNORECASE)
_DANGLING = re.compile(r"\b(and|or|the|a|an|to|of|for|with|your|tap|in|on|at|by|is|are|then)\s*$|[,;:(\-]\s*$",
                       re.IGNORECASE)


_FILLER = frozenset(["answer", "question", "note", "help", "hope", "information", "following", "steps"])


class SentenceChecker(Protocol):
    """Anything that judges one sentence (the grounding checker)."""

    def check(self, sentence: str) -> SentenceCheck: ...


@dataclass
class StreamReport:
    """What the check did to the whole draft."""

    checks: list[SentenceCheck] = field(default_factory=list)
    removed: int = 0
    shown: list[tuple[str, SentenceCheck]] = field(default_factory=list)
    """(display text, verdict) of every released sentence, in order."""
    stopped: str = ""
    """Why the draft was cut short, if it was (`loop`, `off_evidence`, `enough`)."""
    quoted: int = 0
    """Lines quoted from the evidence: the model's steps were incomplete or out of order, so the article's own
    steps were shown instead, or the draft left out the fact the question asked for."""
    fact_quoted: bool = False
    """The draft stated no fact of the kind the question asked for, so the evidence's was quoted."""

    @property
    def before(self) -> float | None:
        counted = [c for c in self.checks if c.checkable]
        return sum(c.supported for c in counted) / len(counted) if counted else None

    @property
    def after(self) -> float | None:
        counted = [c for _, c in self.shown if c.checkable]
        return sum(c.supported for c in counted) / len(counted) if counted else None

    @property
    def has_fact(self) -> bool:
        return any(c.checkable for _, c in self.shown)

    @property
    def articles(self) -> list[int]:
        """0-based evidence articles that support a shown sentence, in order of first use."""
        return list(dict.fromkeys(c.article for _, c in self.shown if c.article is not None))


class CheckedStream:
    """Feed it the model's pieces; it yields display text for each sentence that passed."""

    def __init__(self, checker: SentenceChecker, *, procedure: Sequence[str] = (), procedure_article: int = 0,
                 fact: AskedFact | None = None, leads: Sequence[str] = (), max_sentences: int = 5,
                 max_items: int = 10, max_repeats: int = 2, max_unsupported_run: int = 3) -> None:
        """`fact`: the evidence sentence that states what the question asks for, if it asks for a fact; the reply
        states a fact of that kind before its other sentences are shown. `leads`: the evidence's sentences that
        lead a list ("We charge the fee when a returned item:"), shown only before an item of a list."""
        self.checker = checker
        self.leads = tuple(" ".join(lead.lower().split()) for lead in leads)
        self.procedure, self.procedure_article = list(procedure), procedure_article
        self.fact = fact
        self._held_prose: list[tuple[str, SentenceCheck]] = []
        self._held_items: list[tuple[str, SentenceCheck]] = []
        self.max_sentences, self.max_items = max_sentences, max_items
        self.max_repeats, self.max_unsupported_run = max_repeats, max_unsupported_run
        self.report = StreamReport()
        self._buffer = ""
        self._seen: list[set[str]] = []
        self._pending_answer = ""
        self._pending_lead: tuple[str, SentenceCheck] | None = None
        """A sentence that ends with ":", shown only when a list item follows it."""
        self._repeats = 0
        self._unsupported_run = 0
        self._items = 0
        self._last_kind = ""
        self._procedure_shown = False
        self._on_new_line = True  # whether the sentence being released starts a line (else it continues one)

    @property
    def done(self) -> bool:
        """True once the draft should stop (loop, lost evidence or enough said)."""
        return bool(self.report.stopped)

    def feed(self, pieces: Iterable[str]) -> Iterator[str]:
        """Display text of every sentence that passed, as soon as it is complete."""
        for piece in pieces:
            self._buffer += piece
            while not self.done:
                cut = _next_boundary(self._buffer)
                if cut is None:
                    break
                (end, start), sentence = cut, self._buffer[: cut[0]]
                separator, self._buffer = self._buffer[end:start], self._buffer[start:]
                yield from self._release(sentence, complete=True)
                self._on_new_line = "\n" in separator
            if self.done:
                return

    def finish(self) -> Iterator[str]:
        """Release what is left when the model stopped (a fragment cut mid-sentence is held back)."""
        if not self.done:
            yield from self._release(self._buffer, complete=False)
        self._buffer = ""
        yield from self._release_procedure()
        yield from self._release_held_prose(quote_fact=True)
        if self._pending_answer:  # a bare "Yes." with nothing after it claims nothing checkable
            self.report.removed += 1
            self._pending_answer = ""
        if self._pending_lead is not None:  # a lead-in with no list after it
            self.report.removed += 1
            self._pending_lead = None

    def _release(self, raw: str, *, complete: bool) -> Iterator[str]:
        text = raw.strip()
        if not text or not strip_citations(text).strip(" .") or _ONLY_NUMBER.match(strip_citations(text)):
            return
        if text.startswith("|") or text.count("|") >= 2:  # a raw table row
            self.report.removed += 1
            return
        if not complete and (not re.search(r"[.!?)\]]$", text) and (not LIST_MARK.match(text) or
                                                                     _DANGLING.search(text))):
            self.report.removed += 1  # cut off mid-sentence
            return
        if is_bare_answer(text):
            self._pending_answer = text
            return
        if len(re.findall(r"\w+", LIST_MARK.sub("", strip_citations(text)))) < 2:  # "Visa)": a fragment, no claim
            self.report.removed += 1
            return
        if self._pending_answer:
            text, self._pending_answer = f"{self._pending_answer} {LIST_MARK.sub('', text)}", ""
        text = self._without_lead(text)
        text = without_contradicted_yes(text)
        words = content_words(LIST_MARK.sub("", text))
        if words and any(_similar(words, seen) for seen in self._seen):
            self.report.removed += 1
            self._repeats += 1
            if self._repeats >= self.max_repeats:
                self.report.stopped = "loop"
            return
        if self._adds_nothing(text, words):
            self.report.removed += 1
            return
        self._seen.append(words)
        verdict = self.checker.check(text)
        self.report.checks.append(verdict)
        if not verdict.supported:
            self.report.removed += 1
            self._unsupported_run += 1
            if self._unsupported_run >= self.max_unsupported_run:
                self.report.stopped = "off_evidence"
            return
        self._unsupported_run = 0
        is_item = bool(LIST_MARK.match(strip_citations(text)))
        if is_item and not verdict.checkable:  # "1. Reset your password": a heading posing as a step
            self.report.removed += 1
            return
        if self._pending_lead is not None:  # "We charge the fee when a returned item:" leads a list, or nothing
            lead, self._pending_lead = self._pending_lead, None
            if is_item:
                yield from self._place(*lead, is_item=False)
            else:
                self.report.removed += 1
        if not is_item and text.endswith(":"):
            self._pending_lead = (text, verdict)
            return
        yield from self._place(text, verdict, is_item=is_item)

    def _without_lead(self, text: str) -> str:
        """The sentence without an evidence lead-in that it runs into another sentence ("We charge the fee when a
        returned item: A restocking fee only applies ...": the list it leads never comes)."""
        written = " ".join(strip_citations(text).split())
        for lead in self.leads:
            rest = written[len(lead):].strip()
            if written.lower().startswith(lead) and rest[:1].isupper():  # "...: $39.99/year" is the list's own item
                self.report.removed += 1
                return rest
        return text

    def _place(self, text: str, verdict: SentenceCheck, *, is_item: bool) -> Iterator[str]:
        """Show a passed sentence now, or hold it until the steps or the asked-for fact are shown."""
        words = content_words(LIST_MARK.sub("", text))
        if self.procedure and self._held_items and not is_item and not self._on_new_line:
            held, held_verdict = self._held_items[-1]  # "4. Charge it. The light turns green.": one step
            self._held_items[-1] = (f"{held} {text}", held_verdict)
            return
        if self.procedure and is_item:  # steps are released together, once the list is complete
            self._held_items.append((text, verdict))
            return
        if self._procedure_shown and _NUMBERED.match(strip_citations(text)):  # one procedure a reply: a step of
            self.report.removed += 1  # another article's procedure would continue its numbering as if it were its own
            return
        if self.procedure and not self._held_items and not text.endswith(":"):  # the steps asked for come first
            yield from self._hold(text, verdict)
            return
        if self._held_items:
            yield from self._release_procedure()
            if self._adds_nothing(text, words):  # it repeats one of the steps just shown
                self.report.removed += 1
                return
        if self.fact is not None and not is_item:
            if not self.fact.stated_in(text):  # the asked-for fact first: this waits for a sentence that states it
                yield from self._hold(text, verdict)
                return
            self.fact = None
            yield from self._show(text, verdict)
            yield from self._release_held_prose(quote_fact=False)
            return
        yield from self._show(text, verdict)

    def _hold(self, text: str, verdict: SentenceCheck) -> Iterator[str]:
        """Keep a passed sentence back until the steps or the asked-for fact are shown; once a whole reply's worth
        waits, the fact is quoted and they are released (a reply that never states it still streams and ends)."""
        self._held_prose.append((text, verdict))
        if not self.procedure and len(self._held_prose) >= self.max_sentences - 1:
            yield from self._release_held_prose(quote_fact=True)

    def _release_held_prose(self, *, quote_fact: bool) -> Iterator[str]:
        """The sentences held back, in order; with `quote_fact`, after the evidence's sentence that states the fact
        asked for when nothing shown states it yet (and the model wrote something: else the fallback answers)."""
        held, self._held_prose = self._held_prose, []
        fact, self.fact = self.fact, None
        if quote_fact and fact is not None and (held or self.report.shown) and \
                not any(fact.stated_in(shown) for shown, _ in self.report.shown) and \
                not self._adds_nothing(fact.sentence, content_words(fact.sentence)):
            self.report.quoted += 1
            self.report.fact_quoted = True
            yield from self._show(fact.sentence, SentenceCheck(fact.sentence, True, True, (), fact.article - 1))
        for text, verdict in held:  # each passed the check: shown even after a loop or lost evidence ended the draft
            if self.report.stopped == "enough" or self._adds_nothing(text, content_words(LIST_MARK.sub("", text))):
                self.report.removed += 1
            else:
                yield from self._show(text, verdict)

    def _show(self, text: str, verdict: SentenceCheck) -> Iterator[str]:
        display = self._display(text)
        self.report.shown.append((display, verdict))
        yield display
        prose = sum(1 for _, c in self.report.shown) - self._items
        if self._items >= self.max_items or prose >= self.max_sentences:
            self.report.stopped = "enough"

    def _release_procedure(self) -> Iterator[str]:
        """The model's steps when they cover the article's procedure in order; else the procedure itself."""
        if not self.procedure:
            return
        held, self._held_items = self._held_items, []
        if _covers_in_order([LIST_MARK.sub("", strip_citations(t)) for t, _ in held], self.procedure):
            for text, verdict in held:
                yield from self._show(text, verdict)
        else:
            self.report.removed += len(held)
            self.report.quoted = len(self.procedure)
            for n, step in enumerate(self.procedure, start=1):
                verdict = SentenceCheck(step, True, True, (), self.procedure_article)
                yield from self._show(f"{n}. {step}", verdict)
        self.procedure = []
        self._procedure_shown = True
        if self.fact is not None and any(self.fact.stated_in(shown) for shown, _ in self.report.shown):
            self.fact = None  # the steps state it
        if self.fact is None:
            yield from self._release_held_prose(quote_fact=False)

    def _adds_nothing(self, text: str, words: set[str]) -> bool:
        """A sentence whose facts and words were all said already ("The answer is 60 minutes.")."""
        if not self.report.shown:
            return False
        said = " ".join(shown for shown, _ in self.report.shown)
        return fact_tokens(text) <= fact_tokens(said) and not (words - content_words(said) - _FILLER)

    def _display(self, text: str) -> str:
        """The sentence as shown: no citation markers, list items renumbered, one item per line, prose with the end
        of its sentence (a line the model wrote without a full stop would run into the next: "... 5–10 business
        days Apple Pay and Google Pay: ...")."""
        body = strip_citations(text)
        first = not self.report.shown
        if _NUMBERED.match(body) or _BULLET.match(body):
            numbered = bool(_NUMBERED.match(body))
            self._items += 1
            body = LIST_MARK.sub("", body)
            item = f"{self._items}. {body}" if numbered else f"- {body}"
            sep = "" if first else ("\n" if self._last_kind == "item" else "\n\n")
            self._last_kind = "item"
            return sep + item
        sep = "" if first else ("\n\n" if self._last_kind == "item" else " ")
        self._last_kind = "prose"
        return sep + as_sentence(body)


def without_contradicted_yes(text: str) -> str:
    """The sentence without its opening "Yes" when the rest negates ("Yes, Apple Pay and Google Pay can be used for
    store orders only, not for subscriptions." to "Is Apple Pay accepted for Protect plans?"): the check reads the
    claim, never whether the question's answer is yes, so a "Yes" before a negation may say the opposite of it."""
    opening = _YES.match(text)
    if not opening or not negated(set(re.findall(r"[a-z']+", text[opening.end():].lower()))):
        return text
    rest = text[opening.end():]
    return rest[:1].upper() + rest[1:]


def _covers_in_order(items: Sequence[str], steps: Sequence[str], min_share: float = 0.5) -> bool:
    """Every step is matched, in order, by an item sharing at least `min_share` of the step's content words."""
    position = 0
    for step in steps:
        wanted = content_words(step)
        while position < len(items) and len(wanted & content_words(items[position])) < min_share * len(wanted):
            position += 1
        if position == len(items):
            return False
        position += 1
    return True


def _next_boundary(text: str) -> tuple[int, int] | None:
    """(end of the first complete sentence, start of the next) in `text`, or None while it is incomplete.

    A list number ("2.") or an abbreviation ("e.g.") does not end a sentence.
    """
    for match in _BOUNDARY.finditer(text):
        before = text[: match.start()]
        last_line = before.rsplit("\n", 1)[-1]
        if _ONLY_NUMBER.match(last_line) or _ABBREVIATION.search(before):
            continue
        return match.start(), match.end()
    return None


def _similar(a: set[str], b: set[str], threshold: float = 0.7) -> bool:
    """Two sentences say the same thing when their content words mostly coincide (or one holds the other's)."""
    if not a or not b:
        return False
    return len(a & b) / len(a | b) >= threshold or (min(len(a), len(b)) >= 2 and (a <= b or b <= a))


__all__ = ["CITATION_MARKER", "CheckedStream", "StreamReport"]
