from assistant.dialogue.grounding import check_reply, extractive_answer, fact_tokens, split_sentences

PASSAGE = ("Refunds are issued within 3 business days of approval. Card refunds then take 5-10 business days. "
           "Details: https://help.northwind.example/billing/refund-policy or billing@northwind.example.")


def test_fact_tokens_cover_prices_windows_urls_and_emails_but_not_list_numbers():
    assert fact_tokens("It costs $59.99 a year, 20% off, within 30 days [1].") == {"$59.99", "20%", "30"}
    assert fact_tokens("Write to billing@northwind.example or see https://x.example/a.") == {
        "billing@northwind.example", "https://x.example/a"}
    assert fact_tokens("1. Open the app") == set()


def test_supported_unsupported_and_exempt_sentences():
    report = check_reply("Refunds are issued within 3 business days [1]. A refund costs a $5 fee. "
                         "Happy to help!", [PASSAGE])
    verdicts = [(s.checkable, s.supported) for s in report.sentences]
    assert verdicts == [(True, True), (True, False), (False, True)]
    assert report.sentences[1].missing_facts == ("$5",)
    assert report.groundedness == 0.5
    assert "fee" not in report.supported_text and report.has_supported_fact


def test_invented_url_and_unrelated_claim_are_unsupported():
    report = check_reply("Visit https://refunds.example.com to claim. Our CEO approves refunds personally on "
                         "Sundays.", [PASSAGE])
    assert [s.supported for s in report.sentences] == [False, False] and not report.has_supported_fact


def test_extractive_answer_picks_the_sentences_closest_to_the_question():
    index, text = extractive_answer("how many business days for a card refund?", ["Unrelated text.", PASSAGE])
    assert index == 1 and "5-10 business days" in text
    assert extractive_answer("banana bread", [PASSAGE]) is None


def test_sentences_split_on_list_items_and_punctuation():
    assert split_sentences("Do this. Then that!\n1. Open the app\n2. Tap Reset") == [
        "Do this.", "Then that!", "1. Open the app", "2. Tap Reset"]


REFUNDS = ("Refunds are issued within 14 days. Monthly plans are not refunded for partial months. "
           "We can only refund to the original card.")


def test_reversed_policy_fails_the_polarity_check():
    report = check_reply("Monthly plans are refunded for partial months.", [REFUNDS])
    assert not report.sentences[0].supported
    assert check_reply("Monthly plans are not refunded for partial months.", [REFUNDS]).sentences[0].supported


def test_numbers_match_whole_tokens_and_number_words():
    assert not check_reply("Refunds are issued within 4 days.", [REFUNDS]).sentences[0].supported
    assert check_reply("Refunds are issued within fourteen days.", [REFUNDS]).sentences[0].supported
    assert fact_tokens("three business days") == {"3"}


def test_short_claims_are_checked():
    sentence = check_reply("No refunds are possible.", [REFUNDS]).sentences[0]
    assert sentence.checkable and not sentence.supported


def test_a_cited_sentence_is_checked_against_its_own_source():
    passages = ["Shipping to Canada costs $19.", REFUNDS]
    assert check_reply("Shipping to Canada costs $19 [1].", passages).sentences[0].supported
    assert not check_reply("Shipping to Canada costs $19 [2].", passages).sentences[0].supported
    report = check_reply("Shipping to Canada costs $19.", passages)
    assert report.supporting_passages == [0]


def fake_embed(table):
    """Vectors looked up by text: a paraphrase and its source get the same direction."""
    import numpy as np

    def embed(texts):
        return np.array([table.get(text, [0.0, 0.0, 1.0]) for text in texts], dtype=np.float32)
    return embed


def test_paraphrase_is_supported_by_embedding_similarity():
    passage = "Reset links are valid for sixty minutes. They work once."
    paraphrase = "Your emailed link stops working after one hour."
    embed = fake_embed({paraphrase: [1.0, 0.0, 0.0], "Reset links are valid for sixty minutes.": [0.96, 0.28, 0.0]})
    assert not check_reply(paraphrase, [passage]).sentences[0].supported  # too few shared words
    assert check_reply(paraphrase, [passage], embed=embed, min_similarity=0.9).sentences[0].supported
    assert not check_reply(paraphrase, [passage], embed=embed, min_similarity=0.99).sentences[0].supported


def test_extractive_answer_can_match_by_meaning():
    question = "how long can I use the link?"
    embed = fake_embed({question: [1.0, 0.0, 0.0], "Reset links are valid for sixty minutes.": [0.8, 0.6, 0.0]})
    passage = "Reset links are valid for sixty minutes. They work once."
    assert extractive_answer(question, [passage], min_coverage=0.9) is None
    assert extractive_answer(question, [passage], min_coverage=0.9, embed=embed, min_similarity=0.7) == (
        0, "Reset links are valid for sixty minutes. They work once.")
