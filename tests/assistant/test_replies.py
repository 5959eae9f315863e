"""What a cited source shows: the evidence the answer came from, readable as one paragraph."""

from assistant.dialogue.replies import citations
from knowledge import Hit

PAYMENTS = Hit("billing/payment-methods", "billing/payment-methods#1", "Accepted payment methods",
               "Orders can be paid with:\n- Visa\n- Discover", "https://help.example/payments", 1.0, 0.9)


def test_a_cited_source_shows_its_evidence_with_list_items_as_a_list_in_a_sentence():
    evidence = ["Visa\nDiscover\nApple Pay\nApple Pay and Google Pay can be used for store orders only.\nPayPal"]
    [cited] = citations([1], [PAYMENTS], evidence=evidence)
    assert cited["snippet"] == ("Visa, Discover, Apple Pay. Apple Pay and Google Pay can be used for store orders "
                                "only. PayPal.")
    assert (cited["n"], cited["doc_id"], cited["title"]) == (1, "billing/payment-methods", "Accepted payment methods")
    [own_commas] = citations([1], [PAYMENTS], evidence=["comes back without its box,\nis missing accessories, or"])
    assert own_commas["snippet"] == "comes back without its box, is missing accessories, or."


def test_without_evidence_the_passage_is_shown_and_a_long_one_is_cut_between_words():
    [cited] = citations([1], [PAYMENTS])
    assert cited["snippet"] == "Orders can be paid with: - Visa - Discover"
    [cut] = citations([1], [PAYMENTS], snippet_chars=20, evidence=["Refunds are issued within five business days."])
    assert cut["snippet"] == "Refunds are issued…"
