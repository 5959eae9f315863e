import hmac

from assistant import keys
from assistant.keys import key_matches


def test_a_key_matches_only_a_configured_key():
    configured = ["k-agent", "clé-ünïcode"]
    assert key_matches("k-agent", configured) and key_matches("clé-ünïcode", configured)
    for wrong in ("k-agen", "k-agent ", "K-AGENT", "", None, "\udcff"):
        assert not key_matches(wrong, configured)
    assert not key_matches("k-agent", [])


def test_every_key_is_compared_in_constant_time(monkeypatch):
    calls, compare = [], hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    assert key_matches("first", ["first", "second", "third"])
    assert len(calls) == 3  # no early exit on the first match
