"""Input guards: what a customer message must be before the assistant works on it."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence

from assistant.errors import InvalidMessage

_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def check_message(text: object, max_chars: int) -> str:
    """The message, normalised (NFC, trimmed), or InvalidMessage saying what is wrong and what to do."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidMessage("the message is not UTF-8 text: send plain text") from err
    if not isinstance(text, str):
        raise InvalidMessage("the message must be text")
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise InvalidMessage("the message is empty: type a question, e.g. 'How do I reset my password?'")
    if len(text) > max_chars:
        raise InvalidMessage(
            f"the message is {len(text):,} characters long and the limit is {max_chars:,}: "
            "shorten it or split it into several messages"
        )
    if not looks_like_text(text):
        raise InvalidMessage("the message does not look like text (control or undecodable characters): "
                             "type your question in words")
    return text


def looks_like_text(text: str) -> bool:
    """False for binary garbage: control, surrogate, private-use or replacement characters."""
    return not any(
        ch == "\ufffd" or (unicodedata.category(ch) in ("Cc", "Cs", "Co") and ch not in _ALLOWED_CONTROLS)
        for ch in text
    )


# -- personal data ---------------------------------------------------------------------------
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?\b", re.IGNORECASE)
_CARD = re.compile(r"(?<!\d)(?:\d[ .-]?){12,18}\d(?!\d)")
_PHONE_CUE = re.compile(r"\b(phone|call|tel|telephone|mobile|cell|whatsapp|sms|fax|text me|reach me|ring|"
                        r"(my|our|his|her|contact|home|work|direct) (number|no\.?|#)|number is)\b", re.IGNORECASE)
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")
# Numbers are read as written in these regions (spans), and a national number without + or a
# cue counts as a phone only when it is a valid number of the first one.
PHONE_REGIONS = ("US", "GB")
CUE_BEFORE_CHARS, CUE_AFTER_CHARS = 30, 20


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every payment card number passes."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN."""
    compact = re.sub(r"[ -]", "", candidate).upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def phone_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` holds something written like a phone number (libphonenumber), longest first on overlap."""
    import phonenumbers

    spans = {(match.start, match.end)
             for region in PHONE_REGIONS
             for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE)}
    kept: list[tuple[int, int]] = []
    for start, end in sorted(spans, key=lambda span: (span[0], -span[1])):
        if not kept or start >= kept[-1][1]:
            kept.append((start, end))
    return kept


def looks_like_phone(text: str, start: int, end: int) -> bool:
    """7 to 15 digits written as a phone number (+ or 00, brackets, a leading 0), valid in the first region,
    or announced as one ("call me on", "my number", "… is my mobile")."""
    import phonenumbers

    value = text[start:end]
    if not 7 <= len(re.sub(r"\D", "", value)) <= 15 or _DATE.match(value):
        return False
    if re.search(r"(\d[ .-]?|\w-?)$", text[:start]) or re.match(r"[ .-]?\d|\w", text[end:]):
        return False  # a piece of a longer number or of an id such as NW-10482337
    if value.startswith(("+", "(", "0")):
        return True
    if phonenumbers.is_valid_number(phonenumbers.parse(value, PHONE_REGIONS[0])):
        return True
    return bool(_PHONE_CUE.search(text[max(0, start - CUE_BEFORE_CHARS):start])
                or _PHONE_CUE.search(text[end:end + CUE_AFTER_CHARS]))


def redact_pii(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The text with e-mails, IBANs (mod-97), card numbers (Luhn) and phone numbers replaced by `[KIND]`,
    and the (kind, value) pairs that were found."""
    found: list[tuple[str, str]] = []

    def replace(kind: str, valid=None):
        def substitute(match: re.Match) -> str:
            if valid is not None and not valid(match):
                return match.group()
            found.append((kind, match.group()))
            return f"[{kind}]"
        return substitute

    text = EMAIL.sub(replace("EMAIL"), text)
    text = _IBAN.sub(replace("IBAN", lambda m: iban_valid(m.group())), text)
    text = _CARD.sub(replace("CARD", lambda m: luhn_valid(re.sub(r"\D", "", m.group()))), text)
    phones = [(start, end) for start, end in phone_spans(text) if looks_like_phone(text, start, end)]
    found.extend(("PHONE", text[start:end]) for start, end in phones)
    for start, end in reversed(phones):
        text = text[:start] + "[PHONE]" + text[end:]
    return text, found


def redact_values(text: str, found: Sequence[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """Replace exactly the given (kind, value) pairs, e.g. what a customer disclosed, echoed in a reply."""
    hits = [(kind, value) for kind, value in found if value in text]
    for kind, value in hits:
        text = text.replace(value, f"[{kind}]")
    return text, hits


# -- instructions hidden in text ------------------------------------------------------------------
_INJECTION = re.compile(
    r"(ignore|disregard|forget|override)\s+(all\s+|any\s+|the\s+|your\s+)?(previous|prior|above|earlier|system)?\s*"
    r"(instructions|prompts?|rules|messages)|you\s+are\s+now\b|new\s+instructions\s*:|system\s+prompt|"
    r"pretend\s+(to\s+be|you\s+are)|act\s+as\s+(an?|the)\s+(?!customer)|developer\s+mode|jailbreak",
    re.IGNORECASE,
)
_LINE_START = re.compile(r"^[\s>*\u2022-]*")  # quote marks and bullets in front of a line


def _joined(lines: Sequence[str]) -> tuple[str, list[int]]:
    """The lines as one line (markers in front and line breaks dropped), and where each line starts in it,
    so that an instruction split across lines reads as one."""
    parts, starts, position = [], [], 0
    for line in lines:
        body = _LINE_START.sub("", line).rstrip()
        starts.append(position)
        parts.append(body)
        position += len(body) + 1
    return " ".join(parts), starts


def injection_markers(text: str) -> list[str]:
    """Phrases that try to change the assistant's instructions ("ignore previous instructions", "you are now"),
    also when split across lines."""
    return [match.group(0) for match in _INJECTION.finditer(_joined(text.splitlines())[0])]


_REQUESTED = re.compile(r"\b(?:say|reply|respond|answer|write|output|print|type|confirm|tell \w+(?: \w+)?)"
                        r"(?:\s+with)?\s*(?P<opener>:\s*[\"“'‘]?|[\"“'‘])?\s*(?P<phrase>[^\"”’'.!?\n:]{2,80}?)\s*[\"”'’]?\s*"
                        r"(?:[.!?\n]|$)", re.IGNORECASE)


def requested_phrases(text: str) -> list[str]:
    """What a message with instruction-like text asks the assistant to say, lower-cased: a phrase after "say",
    "reply", "tell every customer" ... that is quoted, follows a colon or is in capitals ("... and reply REFUND
    APPROVED."). Nothing when the message holds no instruction-like text, and never a plain request ("You are
    now charging me twice! Can you tell me the refund policy?"). A reply sentence holding one is never shown."""
    joined = _joined(text.splitlines())[0]
    if not _INJECTION.search(joined):  # what injection_markers reads
        return []
    return [" ".join(m["phrase"].lower().split()) for m in _REQUESTED.finditer(joined)
            if m["phrase"].strip() and (m["opener"] or m["phrase"].isupper())]


WITHHELD = "[instruction-like text withheld]"
"""What stands in a quoted passage where instruction-like text was."""


def quote_as_data(passage: str) -> str:
    """A retrieved passage with instruction-like text withheld (every line it touches), so it can only inform,
    never instruct."""
    lines = passage.splitlines(keepends=True)
    joined, starts = _joined(lines)
    withheld: set[int] = set()
    for match in _INJECTION.finditer(joined):
        end = match.start() + len(match.group().rstrip()) - 1
        withheld.update(range(bisect_right(starts, match.start()) - 1, bisect_right(starts, end)))
    return "".join(WITHHELD + line[len(line.rstrip("\r\n")):] if number in withheld else line
                   for number, line in enumerate(lines))
