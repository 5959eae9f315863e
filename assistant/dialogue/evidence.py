"""Evidence first: the sentences, steps and table facts of the retrieved articles that answer the question.

Retrieval finds documents; a document holds many facts, most of them about something else ("the
download link is valid for 7 days" sits in the data-export article, not in the password one). The
turn therefore ranks the *units* of the retrieved documents against the question in its
conversation and keeps only those close to the best one. The prompt holds that evidence only,
numbered by article, and the grounding check accepts a reply sentence only when this evidence
supports it.

Units: a prose sentence, a list item (a step, when the list is numbered) or a table row written
out as a sentence ("Premium monthly price: $11.99/month."). Headings, code blocks and blank
cells are never evidence. A unit's score is the cosine between the question and the unit (read
with its article title and section), plus a small bonus for the article's retrieval rank; its
embeddings are cached, so ranking costs one query embedding per turn.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

from assistant.dialogue.text import (
    STOP_WORDS,
    as_sentence,
    content_words,
    fact_tokens,
    is_contact_fact,
    names,
    split_sentences,
)
from assistant.guards import WITHHELD, injection_markers, quote_as_data
from knowledge import Chunk, Hit
from knowledge.embedder import CachedEncoder, Encode

Embed = Encode
"""Texts to L2-normalised vectors (the retriever's embedder)."""

_LIST_ITEM = re.compile(r"^\s*(?:(?P<bullet>[-*+])|(?P<number>\d{1,3})[.)])\s+(?P<text>.+)$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_MAX_UNIT_CHARS = 400


@dataclass(frozen=True)
class Unit:
    """One piece of evidence as it stands in its article."""

    doc_id: str
    title: str
    source: str
    section: str
    text: str
    kind: str = "sentence"
    """`sentence`, `step` (numbered list item), `item` (bullet) or `row` (table row as a sentence)."""
    group: str = ""
    """Units of one list share a group (`<chunk id>/<n>`), so steps can be kept together and in order."""
    order: tuple[int, int] = (0, 0)
    """(chunk position, index in the chunk): the unit's place in its article."""

    @property
    def facts(self) -> bool:
        """True when the unit states a checkable fact (a number, price, time window, URL or e-mail)."""
        return bool(fact_tokens(self.text))

    @property
    def fragment(self) -> bool:
        """A bullet that is no sentence and states no fact of its own ("Liquid damage", "Visa"): it means something
        only in its list ("Canada: CA$34.99" stands alone)."""
        return (self.kind == "item" and bool(self.group) and not self.facts
                and not re.search(r"[.!?]$", self.text.strip()))

    @property
    def under_heading(self) -> str:
        """A fragment read under its section heading ("What isn't covered: Liquid damage."); else the text."""
        return f"{self.section or self.title}: {as_sentence(self.text)}" if self.fragment else self.text

    @property
    def in_its_list(self) -> str:
        """A bullet read under its section heading when quoted alone ("When there's no fee: The item is defective or
        was damaged on arrival."): out of its list, the item no longer says what it is a case of."""
        if self.kind == "item" and self.group and self.section and not self.fragment:
            return f"{self.section}: {self.text}"
        return self.under_heading

    @property
    def context_text(self) -> str:
        """What is embedded: the unit read with its article title and section."""
        heading = f"{self.title} — {self.section}" if self.section else self.title
        return f"{heading}: {self.text}"


@dataclass(frozen=True)
class AskedFact:
    """The evidence sentence that states what a question asks for, and which kind of fact that is."""

    sentence: str
    article: int
    """Number of its article in the prompt (1-based)."""
    kind: str = "number"
    """What was asked for: `contact` (a link, e-mail address or phone number), `price` (an amount of money, or a
    percentage of one), `number` (a time, count or other figure), `name` (what the question names: "Can I pay
    with Discover?") or `word` (a yes-or-no question's word that one evidence unit alone says: "... if the item is
    defective?")."""
    names: tuple[str, ...] = ()
    """For `name` and `word`: the question's names (or words) that the evidence states (lower-cased)."""
    facts: frozenset[str] = frozenset()
    """The sentence's own facts of the asked kind; when set, a reply states the fact only by stating one of them
    ("How long do I have to return an item?" is not answered by the holiday exception's "January 31")."""

    def stated_in(self, text: str) -> bool:
        """True when `text` states a fact of the asked kind (one of `facts`, when set; for `name`: one of the
        names)."""
        if self.kind in ("name", "word"):
            return any(_says(text, name) for name in self.names)
        stated = self.of_kind(fact_tokens(text))
        return bool(stated & self.facts) if self.facts else bool(stated)

    def of_kind(self, facts: Set[str]) -> frozenset[str]:
        """The facts among `facts` of the asked kind (a number question takes a price too, a price question a
        percentage: "How much is the fee?": "15% of the price")."""
        return frozenset(fact for fact in facts if _fact_kind(fact) == self.kind
                         or (self.kind == "number" and _fact_kind(fact) == "price")
                         or (self.kind == "price" and fact.endswith("%")))


def _checkable_heading(heading: str) -> str:
    """A heading as the check may read it: nothing when it holds instruction-like text (it supports nothing)."""
    return "" if injection_markers(heading) else heading


def _says(text: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None


def _fact_kind(fact: str) -> str:
    return "contact" if is_contact_fact(fact) else "price" if re.match(r"[$€£]", fact) else "number"


@dataclass(frozen=True)
class Evidence:
    """A unit kept for the turn, with its score and the number of its article in the prompt."""

    unit: Unit
    score: float
    article: int


@dataclass
class EvidenceSet:
    """The evidence of one turn, grouped by article in the order the prompt numbers them."""

    items: list[Evidence] = field(default_factory=list)
    articles: list[Hit] = field(default_factory=list)
    best_score: float = 0.0
    whole_lists: frozenset[str] = frozenset()
    """Groups of the lists and procedures kept whole."""

    def __bool__(self) -> bool:
        return bool(self.items)

    def of_article(self, number: int) -> list[Evidence]:
        """Evidence of article `number` (1-based), in article order."""
        return sorted((e for e in self.items if e.article == number), key=lambda e: e.unit.order)

    def texts(self) -> list[str]:
        """One text per article: its evidence units, one per line (what the check reads)."""
        return ["\n".join(e.unit.text for e in self.of_article(n)) for n in range(1, len(self.articles) + 1)]

    def procedure(self) -> tuple[list[str], int]:
        """(steps, article number) of the procedure the best evidence unit belongs to; ([], 0) when it is no step."""
        if not self.items:
            return [], 0
        top = max(self.items, key=lambda e: e.score)
        if top.unit.kind != "step" or not top.unit.group:
            return [], 0
        return [e.unit.text for e in self.of_article(top.article) if e.unit.group == top.unit.group], top.article

    def leads(self) -> list[str]:
        """The units that lead a list ("We charge the fee when a returned item:")."""
        return [e.unit.text for e in self.items if e.unit.text.endswith(":")]

    def unit_headings(self) -> list[list[str]]:
        """Per article, the title and section of each line of its `texts()` (what a unit's negation is read under)."""
        return [[_checkable_heading(" ".join(filter(None, (e.unit.title, e.unit.section)))) for e in self.of_article(n)]
                for n in range(1, len(self.articles) + 1)]

    def contexts(self) -> list[str]:
        """One line per article: its title and the sections its evidence comes from (what the check may read)."""
        out = []
        for n, article in enumerate(self.articles, start=1):
            sections = dict.fromkeys(e.unit.section for e in self.of_article(n) if e.unit.section)
            out.append(_checkable_heading(" ".join([article.title, *sections])))
        return out

    def summary(self) -> list[dict[str, object]]:
        """JSON-ready record of what the turn used (logged and shown in evaluation)."""
        return [{"article": e.article, "doc_id": e.unit.doc_id, "kind": e.unit.kind, "score": round(e.score, 4),
                 "text": e.unit.text} for e in sorted(self.items, key=lambda e: (e.article, e.unit.order))]


@dataclass(frozen=True)
class EvidenceConfig:
    """How evidence is chosen (thresholds tuned on the demo dev set, never on the test set)."""

    min_score: float = 0.35
    """Best unit score under which the turn has no evidence (and abstains)."""
    margin: float = 0.12
    """Units scoring within this of the best one are kept."""
    max_units: int = 6
    """Most units kept (a kept list counts as one)."""
    max_articles: int = 2
    """Most articles the evidence comes from."""
    confidence_weight: float = 0.1
    """Weight of the article's calibrated retrieval confidence added to each of its units' scores."""
    fact_bonus: float = 0.06
    """Added to units that state a checkable fact when the question asks for one ("how long", "how much")."""
    step_bonus: float = 0.12
    """Added to the steps of a procedure when the question asks how to do something ("How do I reset the hub?"):
    the steps answer it, not the article's opening sentence that names the task. Equal to the default
    `ASSISTANT_EVIDENCE_MARGIN`, so a procedure kept beside the best unit wins."""
    article_margin: float = 0.04
    """A second article is kept only when its best unit scores within this of the best article's."""
    max_list_items: int = 10
    """A list longer than this is not expanded whole."""
    item_lead: float = 0.1
    """A bullet fragment leading the rest of its list by more than this is what the question asks about ("Is
    liquid damage covered?": 0.90 against 0.66) and stands alone; else the question is about the list ("What
    isn't covered?": 0.77 against 0.69) and gets it whole."""
    reference_penalty: float = 0.12
    """Taken off a unit that sends the reader to another article ('If it keeps going offline, see "Device shows
    as offline"'): that article joins the candidates, and what it says should win over the pointer to it."""


def units_of_chunk(chunk: Chunk) -> list[Unit]:
    """The evidence units of one chunk: sentences, list items and table rows; headings and code are skipped."""
    units: list[Unit] = []
    table: list[list[str]] = []
    in_code = False
    group = 0
    paragraph: list[str] = []
    previous_was_item = False

    def unit(text: str, kind: str = "sentence", group_id: str = "") -> None:
        text = " ".join(text.replace("**", "").replace("__", "").split())
        if len(content_words(text)) == 0 and not re.search(r"\d", text):
            return
        for piece in _bounded(text):
            units.append(Unit(chunk.doc_id, chunk.title, chunk.source, chunk.section, piece, kind, group_id,
                              (chunk.position, len(units))))

    def flush_paragraph() -> None:
        if paragraph:
            for sentence in split_sentences(" ".join(paragraph)):
                unit(sentence)
            paragraph.clear()

    def flush_table() -> None:
        for sentence in table_sentences(table):
            unit(sentence, "row")
        table.clear()

    for raw in quote_as_data(chunk.text).splitlines():
        line = raw.strip()
        if line == WITHHELD:  # instruction-like text is never evidence
            line = ""
        if line.startswith("```"):
            flush_paragraph()
            in_code = not in_code
            continue
        if in_code:
            continue
        if line.startswith("|") and line.count("|") >= 2:
            flush_paragraph()
            if not _TABLE_RULE.match(line):
                table.append([cell.strip() for cell in line.strip("|").split("|")])
            continue
        if table:
            flush_table()
        item = _LIST_ITEM.match(line)
        if not line or line.startswith("#"):
            flush_paragraph()
            previous_was_item = previous_was_item and not line.startswith("#")
            continue
        if item:
            flush_paragraph()
            if not previous_was_item:
                group += 1
            kind = "step" if item.group("number") else "item"
            unit(item.group("text"), kind, f"{chunk.id}/{group}")
            previous_was_item = True
            continue
        previous_was_item = False
        paragraph.append(line)
    flush_paragraph()
    flush_table()
    return units


def table_sentences(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of a markdown table as sentences: `Premium monthly price: $11.99/month.` or `Standard: cost $5.`"""
    if len(rows) < 2:
        return [" ".join(cell for cell in row if cell) + "." for row in rows if any(rows)]
    header, *body = rows
    out = []
    for row in body:
        cells = [c.replace("**", "") for c in row]
        if not cells or not cells[0]:
            continue
        if not header[0].strip():  # a matrix: row labels down the side, column names across
            for name, value in zip(header[1:], cells[1:], strict=False):
                if value:
                    out.append(f"{name.strip()} {_lower_first(cells[0])}: {value}.")
        else:
            pairs = [f"{_lower_first(name.strip())} {value}" for name, value in zip(header[1:], cells[1:], strict=False)
                     if value]
            out.append(f"{cells[0]}: {'; '.join(pairs)}." if pairs else f"{cells[0]}.")
    return out


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2].isupper() is False else text


def _bounded(text: str) -> list[str]:
    """A unit no longer than `_MAX_UNIT_CHARS` (one huge line becomes several, cut between words)."""
    if len(text) <= _MAX_UNIT_CHARS:
        return [text]
    pieces, current = [], ""
    for word in text.split():
        if current and len(current) + len(word) + 1 > _MAX_UNIT_CHARS:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return [*pieces, current] if current else pieces


class EvidenceRanker:
    """Ranks the units of the retrieved documents against a question and keeps those that answer it."""

    def __init__(self, chunks: Sequence[Chunk], embed: Embed, config: EvidenceConfig | None = None,
                 query_embed: Embed | None = None) -> None:
        self.config = config or EvidenceConfig()
        self.embed = query_embed or embed
        """Embeds questions: the retriever's cached encoder, so a turn's question is embedded once."""
        self.vectors = CachedEncoder(embed)
        self._chunks: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            self._chunks.setdefault(chunk.doc_id, []).append(chunk)
        self._titles = {c.title.strip().lower(): c.doc_id for c in chunks if c.title.strip()}
        self._references: dict[str, dict[str, str]] = {}
        self._units: dict[str, list[Unit]] = {}
        self.vocabulary: set[str] = set()
        for chunk in chunks:
            self.vocabulary |= content_words(chunk.embedding_text)

    def foreign_terms(self, question: str) -> set[str]:
        """Words of the question that the knowledge base never uses ("bitcoin", "alexa")."""
        return {w for w in content_words(question) if w not in self.vocabulary and not w.isdigit()}

    def unknown_names(self, question: str) -> list[str]:
        """Names in the question ("Bitcoin", "Google Home") with a word the knowledge base never uses, as written.

        When the message asks something ("My IBAN is [IBAN]. How do I reset my password?"), only the
        sentences that ask are read: what the customer tells around the question is context, not its topic."""
        sentences = split_sentences(question)
        asked = " ".join(s for s in sentences if s.endswith("?")) or question
        unknown = []
        for name in sorted(names(asked)):
            words = re.split(r"[ -]", name)
            if any(w not in self.vocabulary and w not in STOP_WORDS and not w.isdigit() for w in words):
                written = re.search(r"[ -]".join(map(re.escape, words)), question, re.IGNORECASE)
                unknown.append(written.group() if written else name)
        return unknown

    def units(self, doc_id: str) -> list[Unit]:
        """Every unit of a document, in article order (computed once)."""
        if doc_id not in self._units:
            chunks = sorted(self._chunks.get(doc_id, []), key=lambda c: c.position)
            seen: set[str] = set()
            units = []
            for chunk in chunks:  # overlapping chunks repeat sentences: keep the first
                for u in units_of_chunk(chunk):
                    if u.text not in seen:
                        seen.add(u.text)
                        units.append(u)
            self._units[doc_id] = units
        return self._units[doc_id]

    def warm(self, limit: int = 5_000) -> None:
        """Embed every unit of small indexes ahead of the first turn."""
        texts = [u.context_text for doc_id in list(self._chunks)[:limit] for u in self.units(doc_id)]
        if texts:
            self.vectors(texts)

    def select(self, question: str, hits: Sequence[Hit], history: Sequence[Mapping[str, str]] = ()) -> EvidenceSet:
        """The evidence that answers `question` among the units of the documents of `hits`."""
        cfg = self.config
        hits = self._with_references(hits)
        candidates = [(rank, u) for rank, hit in enumerate(hits) for u in self.units(hit.doc_id)]
        if not candidates:
            return EvidenceSet()
        query = _with_context(question, history)
        query_vectors = self.embed([question, query] if query != question else [question])
        unit_vectors = self.vectors([u.context_text for _, u in candidates])
        similarity = (unit_vectors @ query_vectors.T).max(axis=1)
        wants_fact = cfg.fact_bonus if asks_for_fact(question) else 0.0
        wants_steps = cfg.step_bonus if asks_how_to(question) else 0.0
        scores = [float(s) + cfg.confidence_weight * hits[rank].confidence + (wants_fact if u.facts else 0.0)
                  + (wants_steps if u.kind == "step" else 0.0)
                  - (cfg.reference_penalty if u.text in self._references_of(u.doc_id) else 0.0)
                  for s, (rank, u) in zip(similarity, candidates, strict=True)]
        order = sorted(range(len(candidates)), key=lambda i: -scores[i])
        best = scores[order[0]]
        if best < cfg.min_score:
            return EvidenceSet(best_score=best)
        article_best: dict[str, float] = {}
        for i in order:
            article_best.setdefault(candidates[i][1].doc_id, scores[i])
        allowed = [d for d, score in article_best.items() if score >= best - cfg.article_margin][: cfg.max_articles]
        kept: list[tuple[int, Unit, float]] = []
        docs: list[str] = []
        groups: set[str] = set()
        for i in order:
            rank, u = candidates[i]
            if scores[i] < best - cfg.margin or len(kept) >= cfg.max_units:
                break
            if u.doc_id not in allowed:
                continue
            if u.doc_id not in docs:
                docs.append(u.doc_id)
            if u.group and u.group in groups:
                continue
            kept.append((rank, u, scores[i]))
            # a step stands in its procedure, "paid with:" or a bullet that is no sentence ("Liquid damage") and
            # not the one asked about in its list: keep the whole list once, in order
            asked_about = u.fragment and scores[i] - max(
                (scores[j] for j, (_, v) in enumerate(candidates) if v.group == u.group and v is not u),
                default=-1.0) > cfg.item_lead
            group = u.group if u.kind == "step" or (u.fragment and not asked_about) else self._list_after(u)
            if group and group not in groups:
                members = [v for v in self.units(u.doc_id) if v.group == group]
                if len(members) <= cfg.max_list_items:
                    groups.add(group)
                    kept.extend((rank, v, scores[i]) for v in members if v is not u)
        by_doc = {hit.doc_id: hit for hit in hits}
        articles = [by_doc[d] for d in docs]
        number = {d: n for n, d in enumerate(docs, start=1)}
        items = [Evidence(u, score, number[u.doc_id]) for _, u, score in kept]
        return EvidenceSet(items, articles, best, frozenset(groups))


    def reference(self, unit: Unit) -> str | None:
        """The document id of the other article a unit sends the reader to (`see "Title"`), if it does."""
        for quoted in _REFERENCE.findall(unit.text):
            doc_id = self._titles.get("".join(quoted).strip().lower())
            if doc_id is not None and doc_id != unit.doc_id:
                return doc_id
        return None

    def _references_of(self, doc_id: str) -> dict[str, str]:
        """{unit text: referenced document id} of a document's units that refer to another article (computed once)."""
        if doc_id not in self._references:
            self._references[doc_id] = {u.text: t for u in self.units(doc_id) if (t := self.reference(u))}
        return self._references[doc_id]

    def _with_references(self, hits: Sequence[Hit]) -> list[Hit]:
        """The hits, then each article one of them refers to that is not among them, with the referring hit's
        confidence (the help center itself says it answers the same question)."""
        out, seen = list(hits), {hit.doc_id for hit in hits}
        for hit in hits:
            for target in self._references_of(hit.doc_id).values():
                if target not in seen:
                    seen.add(target)
                    first = min(self._chunks[target], key=lambda c: c.position)
                    out.append(dataclasses.replace(hit, doc_id=target, chunk_id=first.id, title=first.title,
                                                   text=first.text, source=first.source, metadata=first.metadata))
        return out

    def _list_after(self, unit: Unit) -> str:
        """The group of the list a sentence ending in ':' introduces, if one follows it."""
        if not unit.text.endswith(":"):
            return ""
        units = self.units(unit.doc_id)
        at = next((i for i, v in enumerate(units) if v is unit), None)
        following = units[at + 1] if at is not None and at + 1 < len(units) else None
        return following.group if following is not None and following.group else ""


# 'see "Title"' sends the reader to another article; 'if you see "Device offline"' quotes the screen.
_REFERENCE = re.compile(r"(?<!you )(?<!you'll )(?<!will )(?<!can )(?<!may )\bsee (?:also )?(?:our |the )?"
                        r"(?:article |guide |page )?(?:[\"“]([^\"”\n]{3,100})[\"”]|'([^'\n]{3,100})')", re.IGNORECASE)

_FACT_QUESTION = re.compile(
    r"\b(how (long|much|many|soon|fast|far|often|big|old)|when|what time|what hours|which (day|days|hours)|"
    r"(what|which)(?:['’]?s| is| are)?(?: the| your| my)?(?: (?!if\b)[\w-]+){0,2} (window|period|deadline|cut-?off|"
    r"limit|price|cost|fee|number|phone|e-?mail|address|url|link|website|version)s?|"
    r"percentage|percent|prices?|costs?|fees?|deadlines?|cut-?off|hours|until)\b", re.IGNORECASE)


# "How long is the reset link valid?" asks for a time, whatever else it names.
_TIME_QUESTION = re.compile(r"\b(how (long|many|soon|fast|often|old)|what time|what hours|which (day|days|hours))\b",
                            re.IGNORECASE)
_PRICE_QUESTION = re.compile(r"\b(how much|prices?|costs?|fees?|charged?|pay)\b", re.IGNORECASE)
# "Do I pay full price?", "Is shipping free?": a yes or no is asked for, whatever figures the answer holds.
_YES_NO_QUESTION = re.compile(r"^\W*(do|does|did|is|are|am|was|were|can|could|will|would|should|may|have|has)\b|"
                              r"\b(do|does|did|can|will|would|should|is|are) (i|you|we|it|they|my|your|the|this)\b",
                              re.IGNORECASE)
_WH_WORD = re.compile(r"\b(how|what|whats|what's|when|which|where|who|until)\b", re.IGNORECASE)
_CONTACT_QUESTION = re.compile(r"\b(e-?mail|address|url|link|website|site|page|phone)\b", re.IGNORECASE)


def asks_for_fact(question: str) -> bool:
    """True when the question asks for a number, price, time, link or address ("how long is the link valid?"), not
    for a yes or no ("Do I pay full price?")."""
    asked = " ".join(s for s in split_sentences(question) if s.endswith("?")) or question
    return bool(_FACT_QUESTION.search(asked)) and not asks_yes_no(asked)


def asks_yes_no(question: str) -> bool:
    """True when the question asks for a yes or no ("Is shipping free?", "the order is gone now?"), not "what"."""
    asked = " ".join(s for s in split_sentences(question) if s.endswith("?")) or question
    return bool(_YES_NO_QUESTION.search(asked)) and not _WH_WORD.search(asked)


def asks_how_to(question: str) -> bool:
    """True when the question asks how to do something ("How do I reset the hub?", "what are the steps to ..."),
    which a procedure answers; not "how do I know ..." nor "how long ..."."""
    asked = " ".join(s for s in split_sentences(question) if s.endswith("?")) or question
    return bool(_HOW_TO_QUESTION.search(asked))


_HOW_TO_QUESTION = re.compile(r"\b(how (do|can|should|would) (i|we|you) (?!know\b|tell\b)|how to\b|"
                              r"what (are|is) the steps|steps (to|for)\b)", re.IGNORECASE)


def _with_context(question: str, history: Sequence[Mapping[str, str]], turns: int = 1) -> str:
    """The question preceded by the customer's previous message, for follow-ups ("how long is it valid?")."""
    earlier = [m.get("content", "") for m in history if m.get("role") == "user"][-turns:]
    return " ".join([*earlier, question]).strip()


def extract_answer(evidence: EvidenceSet, max_sentences: int = 2, close: float = 0.05) -> tuple[str, int] | None:
    """(text, article number) quoted from the best evidence: its whole procedure when the best unit is a step, its
    list when a bullet fragment, else the best unit and, when nearly as good, the next one of the same article.
    None without evidence."""
    if not evidence:
        return None
    top = max(evidence.items, key=lambda e: e.score)
    same = evidence.of_article(top.article)
    if top.unit.kind == "step" and top.unit.group:
        steps = [e.unit.text for e in same if e.unit.group == top.unit.group]
        return "\n".join(f"{n}. {text}" for n, text in enumerate(steps, start=1)), top.article
    if top.unit.fragment:  # "Liquid damage" is read under its list's heading: the whole list when it was kept
        items = [e.unit.text for e in same if e.unit.group == top.unit.group]
        if top.unit.group in evidence.whole_lists:
            heading = top.unit.section or top.unit.title
            return f"{heading}:\n" + "\n".join(f"- {text}" for text in items), top.article
        return top.unit.under_heading, top.article
    if top.unit.text.endswith(":"):
        following = [e.unit.text for e in same if e.unit.order > top.unit.order and e.unit.group]
        group = next((e.unit.group for e in same if e.unit.order > top.unit.order and e.unit.group), "")
        items = [e.unit.text for e in same if e.unit.group == group]
        if following and items:
            return top.unit.text + "\n" + "\n".join(f"- {text}" for text in items), top.article
    chosen = sorted((e for e in same if e.unit.kind != "step"), key=lambda e: -e.score)
    # a companion from another section reads as a non sequitur unless it brings a fact ("You have time to fix it.
    # Not enough funds or credit available.")
    chosen = [e for e in chosen if e is top or e.unit.section == top.unit.section or e.unit.facts]
    chosen = [e for e in chosen[:max_sentences] if e is top or e.score >= top.score - close]
    chosen.sort(key=lambda e: e.unit.order)
    return " ".join(as_sentence(e.unit.text) for e in chosen), top.article


ASKED_WORD_BONUS = 0.03
"""Added to a fact sentence's score for each word of the question it says: "How many cameras can I have on the free
plan?" asks for "Free cameras covered: 2." (0.761 + 2 words), not "Premium cameras covered: 25." (0.766 + 1), and
"What is your return window?" still for "You have 30 days ..." (0.919 + 1), not the refurbished devices' "shorter
return window of 15 days" (0.859 + 2). Set by hand on those examples, not tuned: the dev set has no case it
changes."""


def stated_fact(evidence: EvidenceSet, question: str) -> AskedFact | None:
    """The evidence unit that states the kind of fact the question asks for (of those, the best scored, each word
    of the question it says adding `ASKED_WORD_BONUS`): a number, price or time ("What is your return window?":
    "You have 30 days ..."), or a link, e-mail address or phone number when it asks for one of those; for any
    other question but a how-to, what it names ("Can I pay with Discover?"), when the evidence says it. None when
    the question asks for no fact or no unit states one."""
    if not asks_for_fact(question):
        return None if asks_how_to(question) else named_fact(evidence, question)
    kind = "number" if _TIME_QUESTION.search(question) else "contact" if _CONTACT_QUESTION.search(question) \
        else "price" if _PRICE_QUESTION.search(question) else "number"
    any_fact = AskedFact("", 0, kind)
    stating = [e for e in evidence.items if not e.unit.text.endswith(":") and any_fact.stated_in(e.unit.text)]
    if not stating:
        return None
    asked = _singular(content_words(question))
    best = max(stating, key=lambda e: e.score + ASKED_WORD_BONUS * len(asked & _singular(content_words(e.unit.text))))
    return AskedFact(as_sentence(best.unit.text), best.article, kind,
                     facts=any_fact.of_kind(fact_tokens(best.unit.text)))


def named_fact(evidence: EvidenceSet, question: str) -> AskedFact | None:
    """The best evidence sentence that says what the question names ("Can I pay with Discover?": "Plus and Premium
    plans can be paid with a card (Visa, Mastercard, American Express, Discover) or PayPal."): an answer that never
    says "Discover" answers something else. A bullet fragment is read under its heading ("Store orders: Discover.")
    when no sentence says it. None when the question names nothing the evidence says."""
    asked = " ".join(s for s in split_sentences(question) if s.endswith("?")) or question
    named = sorted(names(asked))
    wanted = named or _singled_out(evidence, asked)
    saying = [(e, said) for e in evidence.items if not e.unit.text.endswith(":")
              if (said := {n for n in wanted if _says(e.unit.text, n)})]
    if not saying:
        return None
    best, _ = max(saying, key=lambda pair: (not pair[0].unit.fragment, len(pair[1]), pair[0].score))
    said = tuple(n for n in wanted if any(n in names_said for _, names_said in saying))
    return AskedFact(as_sentence(best.unit.in_its_list), best.article, "name" if named else "word", said)


def _singled_out(evidence: EvidenceSet, asked: str) -> list[str]:
    """Words of a yes-or-no question that one evidence unit alone says ("Is there a restocking fee if the item is
    defective?": "defective", said only by "The item is defective or was damaged on arrival." under "When there's
    no fee"): the condition asked about, which an answer that never says it leaves unanswered."""
    if not asks_yes_no(asked) or len(evidence.items) < 2:
        return []
    said = [_singular(content_words(e.unit.text)) for e in evidence.items]
    topic = _singular(content_words(" ".join(f"{e.unit.title} {e.unit.section}" for e in evidence.items)))
    return sorted(w for w in content_words(asked)
                  if (one := _singular({w})) - topic and sum(bool(one & words) for words in said) == 1)


def _singular(words: Set[str]) -> set[str]:
    """Words with a plural -s taken off ("refunds", "refund"), so a word's two numbers count as one."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words}

