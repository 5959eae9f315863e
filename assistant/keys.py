"""Access keys: a presented key is compared with each configured one in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable


def key_matches(presented: str | None, keys: Iterable[str]) -> bool:
    """True when `presented` equals one of `keys`; every key is compared, each with hmac.compare_digest."""
    if not presented:
        return False
    given = presented.encode("utf-8", "surrogatepass")
    matched = False
    for key in keys:
        # no early exit: the time taken does not tell which key, or how much of one, matched
        matched |= hmac.compare_digest(given, key.encode("utf-8", "surrogatepass"))
    return matched
