from assistant.dialogue.grounding import GroundingChecker, check_reply
from assistant.dialogue.text import fact_tokens, names, split_sentences

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


def test_invented_url_and_unrelated_claim_are_unsupported():
    report = check_reply("Visit https://refunds.example.com to claim. Our CEO approves refunds personally on "
                         "Sundays.", [PASSAGE])
    assert [s.supported for s in report.sentences] == [False, False]


def test_sentences_split_on_list_items_and_punctuation():
    assert split_sentences("Do this. Then that!\n1. Open the app\n2. Tap Reset") == [
        "Do this.", "Then that!", "1. Open the app", "2. Tap Reset"]


def test_a_copy_with_one_word_swapped_for_another_of_the_evidence_fails():
    evidence = ["Choose monthly if you're trying a plan out or only need it for a few months.\n"
                "Choose yearly if you know you'll keep the plan."]
    swapped = check_reply("Choose yearly if you're trying a plan out or only need it for a few months.", evidence)
    assert [s.supported for s in swapped.sentences] == [False]
    assert swapped.sentences[0].missing_facts == ("yearly (the evidence says monthly)",)
    for faithful in ["Choose monthly if you're trying a plan out.", "Choose yearly if you know you will keep the plan.",
                     "Pick monthly if you are only trying a plan out.",  # a word from outside the evidence: reworded
                     "Choose monthly if you're trying plans out or only need it for a few months."]:  # a word form
        assert check_reply(faithful, evidence).sentences[0].supported, faithful


def test_a_number_put_among_the_words_of_another_numbers_claim_fails():
    evidence = ["Free cameras covered: 2.\nPlus cameras covered: 5.\n"
                "Plus suits most homes: up to 5 cameras with a month of video clips and person alerts.\n"
                "We retry 3, 7 and 14 days after the first failed attempt."]
    for blended, moved in [("The free plan has 2 cameras with a month of video clips and person alerts.", "2"),
                           ("We retry 3, 7 and 5 days after the first failed attempt.", "5")]:
        check = check_reply(blended, evidence).sentences[0]
        assert not check.supported and check.missing_facts[0].startswith(f"{moved} (the evidence says"), blended
    for faithful in ["Free covers 2 cameras.", "Plus covers up to 5 cameras with a month of video clips.",
                     "We retry 3, 7 and 14 days after the first failed attempt."]:
        assert check_reply(faithful, evidence).sentences[0].supported, faithful


def test_times_and_abbreviations_do_not_end_a_sentence():
    assert split_sentences("Live chat: every day, 7 a.m. to 11 p.m. ET, including weekends. Call 9 A.M. Monday. "
                           "Bring an ID, e.g. Your passport.") == [
        "Live chat: every day, 7 a.m. to 11 p.m. ET, including weekends.", "Call 9 A.M. Monday.",
        "Bring an ID, e.g. Your passport."]


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
    assert fact_tokens("at least one letter and a one-year warranty") == {"1"}
    assert fact_tokens("The delivery date is the one shown in your tracking; one of our agents") == set()
    assert fact_tokens("Once the window has passed, once you have it") == set()
    assert fact_tokens("A link can be used once.") == {"1"}


def test_short_claims_are_checked():
    sentence = check_reply("No refunds are possible.", [REFUNDS]).sentences[0]
    assert sentence.checkable and not sentence.supported


def test_a_cited_sentence_is_checked_against_its_own_evidence():
    evidence = ["Shipping to Canada costs $19.", REFUNDS]
    assert check_reply("Shipping to Canada costs $19 [1].", evidence).sentences[0].supported
    assert not check_reply("Shipping to Canada costs $19 [2].", evidence).sentences[0].supported
    assert check_reply("Shipping to Canada costs $19.", evidence).sentences[0].article == 0


def test_names_and_labels_are_claims_the_evidence_must_make():
    assert names("Yes, the Northwind Doorbell works with Google Home.") == {"northwind doorbell", "google home"}
    assert names('Tap the "Reset Password" button.') == {"reset password"}
    evidence = ["The Northwind Doorbell works with the Northwind Home app. Tap **Send reset link**."]
    assert not check_reply("Yes, the Northwind Doorbell works with Google Home.", evidence).sentences[0].supported
    assert not check_reply('Tap the "Reset Password" button.', evidence).sentences[0].supported
    assert check_reply('Tap "Send reset link".', evidence).sentences[0].supported


def test_a_bare_yes_is_checked_with_the_claim_after_it():
    evidence = ["We accept Visa, Mastercard and PayPal."]
    report = check_reply("Yes. You can pay in Bitcoin at the store.", evidence, )
    assert len(report.sentences) == 1 and not report.sentences[0].supported
    assert check_reply("Yes. We accept PayPal.", evidence).sentences[0].supported


def test_words_the_knowledge_base_never_uses_need_evidence():
    from assistant.dialogue.grounding import GroundingChecker

    checker = GroundingChecker(["You can pay with a card or a wallet at checkout."], foreign_terms={"bitcoin"})
    assert not checker.check("you can pay with bitcoin at checkout.").supported
    assert checker.check("You can pay with a card at checkout.").supported


def fake_embed(table):
    """Vectors looked up by text: a paraphrase and its source get the same direction."""
    import numpy as np

    def embed(texts):
        return np.array([table.get(text, [0.0, 0.0, 1.0]) for text in texts], dtype=np.float32)
    return embed


def test_paraphrase_is_supported_by_embedding_similarity():
    evidence = "Reset links are valid for sixty minutes.\nThey work once."
    paraphrase = "Your emailed link stops working after one hour."
    embed = fake_embed({paraphrase: [1.0, 0.0, 0.0], "Reset links are valid for sixty minutes.": [0.96, 0.28, 0.0]})
    assert not check_reply(paraphrase, [evidence]).sentences[0].supported  # too few shared words
    assert check_reply(paraphrase, [evidence], embed=embed, min_similarity=0.9).sentences[0].supported
    assert not check_reply(paraphrase, [evidence], embed=embed, min_similarity=0.99).sentences[0].supported


def test_a_name_from_one_article_and_facts_from_another_are_not_supported():
    methods = "Standard: delivery time after dispatch 3–5 business days.\nExpress: delivery time after dispatch 1–2 " \
              "business days."
    abroad = "United Kingdom: delivery time 6–10 business days; price £9.99; free over £120.\n" \
             "EU countries we ship to: delivery time 6–10 business days; price €11.99; free over €140."
    checker = GroundingChecker([methods, abroad], contexts=["Shipping methods and delivery times",
                                                            "International shipping Standard shipping outside the US"])
    chimera = checker.check("Express: delivery time 6–10 business days; price £9.99; free over £120.")
    assert not chimera.supported and "express" in chimera.missing_facts
    assert checker.check("United Kingdom: delivery time 6–10 business days; price £9.99.").supported
    assert checker.check("Express delivery takes 1–2 business days after dispatch.").supported
    assert checker.check("Important: Standard delivery takes 3–5 business days after dispatch.").supported


def test_a_units_negation_is_read_under_its_own_section_and_only_when_the_sentence_uses_its_words():
    from assistant.dialogue.grounding import GroundingChecker

    fee = "The restocking fee is 15% of the item price.\nThe item is defective or was damaged on arrival."
    checker = GroundingChecker([fee], contexts=["Restocking fee How much is it? When there's no fee"],
                               unit_headings=[["Restocking fee How much is it?", "Restocking fee When there's no fee"]])
    assert checker.check("The restocking fee is 15% of the item price.").supported  # another section's "no"
    assert not checker.check("A restocking fee is charged when the item was damaged on arrival.").supported
    whole = GroundingChecker([fee], contexts=["Restocking fee How much is it? When there's no fee"])
    assert not whole.check("The restocking fee is 15% of the item price.").supported  # read under every heading
    listed = "Accidental damage and drops\nLiquid damage"
    warranty = GroundingChecker([listed], contexts=["Warranty What isn't covered"],
                                unit_headings=[["Warranty What isn't covered"] * 2])
    assert warranty.check("Accidental damage and drops.").supported  # the list item, as the list says it
    assert not warranty.check("Accidental damage and drops are covered.").supported
    assert warranty.check("Liquid damage isn't covered.").supported
