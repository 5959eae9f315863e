"""Evidence: the units of an article, and which of them answer a question (no model: a keyword embedder)."""

import numpy as np

from assistant.dialogue.evidence import EvidenceConfig, EvidenceRanker, extract_answer, units_of_chunk
from knowledge import Chunk, Hit

KEYWORDS = ["send", "refund", "ship", "bitcoin"]


def keyword_embed(texts):
    """One direction per keyword, plus a small shared one so no vector is zero; L2-normalised."""
    rows = [[text.lower().count(word) for word in KEYWORDS] + [0.1] for text in texts]
    vectors = np.array(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def chunk(text, doc_id="plans/comparison", title="Compare plans", section="", position=0):
    return Chunk(f"{doc_id}#{position}", doc_id, title, text, source=f"https://help.example/{doc_id}",
                 position=position, section=section)


def hit(doc_id, title):
    return Hit(doc_id, f"{doc_id}#0", title, "", f"https://help.example/{doc_id}", 1.0, 0.5)


def test_a_yes_or_no_question_asks_for_the_one_unit_that_says_its_condition():
    from assistant.dialogue.evidence import AskedFact, stated_fact

    charged = chunk("We charge the fee when a returned item:\n- comes back without its box,\n"
                    "- has damage that isn't caused by a defect.", "returns/fee", "Restocking fee", "When we charge it")
    free = chunk("- The item is defective or was damaged on arrival.\n- We made a mistake, like sending the wrong "
                 "item.", "returns/fee", "Restocking fee", "When there's no fee", position=1)
    evidence = EvidenceRanker([charged, free], keyword_embed, EvidenceConfig(margin=1.0)).select(
        "restocking fee item", [hit("returns/fee", "Restocking fee")])
    asked = stated_fact(evidence, "Is there a restocking fee if the item is defective?")
    # out of its list the item no longer says it is a case of no fee: it is quoted under its section
    assert asked == AskedFact("When there's no fee: The item is defective or was damaged on arrival.", 1, "word",
                              ("defective",))
    assert not asked.stated_in("We made a mistake, like sending the wrong item.")
    # words every unit or the headings say ("fee", "item") single nothing out; a wh-question is no yes or no
    assert stated_fact(evidence, "Is there a restocking fee for an item?") is None
    assert stated_fact(evidence, "Which fee applies when the item is defective?") is None


RESET = chunk("If you forgot your password, you can set a new one.\n\n"
              "1. Open the app and tap Forgot password.\n"
              "2. Enter your email and tap Send reset link.\n"
              "3. Open the email and choose a new password.\n\n"
              "The link is valid for 60 minutes.", "accounts/reset", "Reset your password", "Steps")
REFUNDS = chunk("Refunds are issued within 5 business days.", "billing/refunds", "Refunds")
PARCELS = chunk("A refund for a lost parcel is sent after the shipping check.", "shipping/lost", "Lost parcels")


def test_table_rows_become_sentences():
    matrix = chunk("| | Plus | Premium |\n|---|---|---|\n| Monthly price | $4.99/month | $11.99/month |")
    assert [u.text for u in units_of_chunk(matrix)] == [
        "Plus monthly price: $4.99/month.", "Premium monthly price: $11.99/month."]
    listed = chunk("| Plan | Monthly | Yearly |\n|---|---|---|\n| Premium | $11.99/month | $119.99/year |")
    [row] = units_of_chunk(listed)
    assert row.kind == "row" and row.text == "Premium: monthly $11.99/month; yearly $119.99/year."


def test_numbered_list_is_one_group_of_steps_in_order():
    steps = [u for u in units_of_chunk(RESET) if u.kind == "step"]
    assert [u.text for u in steps] == ["Open the app and tap Forgot password.",
                                       "Enter your email and tap Send reset link.",
                                       "Open the email and choose a new password."]
    assert len({u.group for u in steps}) == 1 and [u.order for u in steps] == sorted(u.order for u in steps)


def test_code_blocks_and_headings_are_never_evidence():
    code = chunk("Run this:\n```\ncurl https://api.example/v1/reset --data 'x=1'\n```\nThen wait 5 minutes.")
    assert [u.text for u in units_of_chunk(code)] == ["Run this:", "Then wait 5 minutes."]
    assert units_of_chunk(chunk("# Plans\n\n## Prices\n### Monthly")) == []


def test_one_huge_line_is_split_into_bounded_units():
    huge = chunk(" ".join(["cameras"] * 2_000))
    units = units_of_chunk(huge)
    assert len(units) > 1 and all(len(u.text) <= 400 for u in units)
    assert sum(len(u.text.split()) for u in units) == 2_000


def test_a_winning_step_brings_its_whole_procedure_in_order():
    ranker = EvidenceRanker([RESET, REFUNDS], keyword_embed)
    evidence = ranker.select("How do I send the link?", [hit("accounts/reset", "Reset your password")])
    assert [e.unit.text for e in evidence.of_article(1)] == [
        "Open the app and tap Forgot password.", "Enter your email and tap Send reset link.",
        "Open the email and choose a new password."]
    assert len(evidence.items) == 3  # each step once; the intro and the 60 minutes are off the question
    assert extract_answer(evidence) == ("1. Open the app and tap Forgot password.\n"
                                        "2. Enter your email and tap Send reset link.\n"
                                        "3. Open the email and choose a new password.", 1)


def test_only_articles_within_the_margin_are_kept():
    ranker = EvidenceRanker([REFUNDS, PARCELS], keyword_embed)
    hits = [hit("billing/refunds", "Refunds"), hit("shipping/lost", "Lost parcels")]
    evidence = ranker.select("When do I get my refund?", hits)
    assert [a.doc_id for a in evidence.articles] == ["billing/refunds"]
    assert evidence.texts() == ["Refunds are issued within 5 business days."]
    both = EvidenceRanker([REFUNDS, PARCELS], keyword_embed, EvidenceConfig(margin=0.5, article_margin=0.5))
    assert [a.doc_id for a in both.select("When do I get my refund?", hits).articles] == [
        "billing/refunds", "shipping/lost"]


def test_nothing_close_enough_gives_an_empty_evidence_set():
    ranker = EvidenceRanker([RESET, REFUNDS], keyword_embed, EvidenceConfig(min_score=0.5))
    evidence = ranker.select("Can I pay in bitcoin?", [hit("billing/refunds", "Refunds"),
                                                      hit("accounts/reset", "Reset your password")])
    assert not evidence and evidence.articles == [] and evidence.best_score < 0.5
    assert extract_answer(evidence) is None
    assert ranker.foreign_terms("Can I pay in bitcoin?") >= {"bitcoin"}


def test_a_list_kept_once_even_when_its_introduction_is_kept_too():
    locked = chunk("Send it now, send it later or ship it: you have two options:\n"
                   "1. Wait and tap Send code again.\n2. Open the app and choose a new code.",
                   "accounts/locked", "Locked account")
    no_step_bonus = EvidenceConfig(step_bonus=0.0)  # so the introduction scores level with the steps
    evidence = EvidenceRanker([locked], keyword_embed, no_step_bonus).select(
        "How do I send a code?", [hit("accounts/locked", "Locked account")])
    texts = [e.unit.text for e in evidence.items]
    assert len(texts) == len(set(texts)) == 3
    assert extract_answer(evidence) == ("1. Wait and tap Send code again.\n2. Open the app and choose a new code.", 1)


def test_a_how_to_question_gets_the_procedure_not_the_sentence_that_names_the_task():
    refund = chunk("You can send a refund from the app.\n\n"
                   "1. Send it: tap Send and pick the refund.\n"
                   "2. Confirm with your PIN.", "billing/send", "Customer payments", "Steps")
    hits = [hit("billing/send", "Customer payments")]
    question = "How do I send a refund?"
    without = EvidenceRanker([refund], keyword_embed, EvidenceConfig(step_bonus=0.0)).select(question, hits)
    assert extract_answer(without) == ("You can send a refund from the app.", 1)
    evidence = EvidenceRanker([refund], keyword_embed).select(question, hits)
    assert extract_answer(evidence) == ("1. Send it: tap Send and pick the refund.\n2. Confirm with your PIN.", 1)
    assert evidence.procedure() == (["Send it: tap Send and pick the refund.", "Confirm with your PIN."], 1)
    # Not asked how to: the sentence closest to the question still wins.
    told = EvidenceRanker([refund], keyword_embed).select("Can you send a refund?", hits)
    assert extract_answer(told) == ("You can send a refund from the app.", 1)


def test_questions_that_ask_how_to_do_something_are_told_apart():
    from assistant.dialogue.evidence import asks_how_to

    for question in ["How do I factory reset the hub?", "how to cancel", "What are the steps to return an item?",
                     "how can i turn off cookies", "Hi there. How should we set up the doorbell?"]:
        assert asks_how_to(question), question
    for question in ["How do I know if it shipped?", "how long does it take", "What is your return window?",
                     "Can I share my subscription?", "Do you ship to Canada? I have a question on how you ship."]:
        assert not asks_how_to(question), question


def test_questions_that_ask_for_a_fact_are_told_apart():
    from assistant.dialogue.evidence import asks_for_fact

    for question in ["What is your return window?", "whats the cutoff time for same day shipping",
                     "what's the email for your data protection officer", "what android version does the app need",
                     "How long is the reset link valid?", "How much is Premium?", "What are your fees?",
                     "What’s your return window?"]:
        assert asks_for_fact(question), question
    for question in ["What are the password requirements", "how do I factory reset my hub",
                     "stop sending me promo emails pls", "whats the difference between plus and premium",
                     "what if my link expired", "How do I change my email address?"]:
        assert not asks_for_fact(question), question


def test_the_stated_fact_is_the_kind_the_question_asks_for():
    from assistant.dialogue.evidence import AskedFact, stated_fact

    contact = chunk("Write to refunds@northwind.example for a refund.\nRefunds are sent within 5 business days.",
                    "billing/refunds", "Refunds")
    ranker = EvidenceRanker([contact], keyword_embed, EvidenceConfig(margin=1.0))
    evidence = ranker.select("refund", [hit("billing/refunds", "Refunds")])
    assert stated_fact(evidence, "How long does a refund take?") == AskedFact(
        "Refunds are sent within 5 business days.", 1, "number", facts=frozenset({"5"}))
    assert stated_fact(evidence, "What is the refund email address?") == AskedFact(
        "Write to refunds@northwind.example for a refund.", 1, "contact",
        facts=frozenset({"refunds@northwind.example"}))
    assert stated_fact(evidence, "What’s the refund e-mail?").kind == "contact"  # a curly apostrophe too
    assert stated_fact(evidence, "How long is the refund email link valid?").kind == "number"  # a time, not a link
    assert stated_fact(evidence, "Can I get a refund?") is None  # it asks for no fact
    assert stated_fact(evidence, "How much does a refund cost?") is None  # a price: 5 business days is none
    assert stated_fact(evidence, "If I return it, do I pay the shipping fee?") is None  # a yes or no


def test_of_the_sentences_stating_a_fact_the_one_saying_what_the_question_says_is_asked_for():
    from assistant.dialogue.evidence import stated_fact

    rows = chunk("Premium plans: money back within 25 days.\nFree plan refund: 2 days.", "billing/refunds", "Refunds")
    evidence = EvidenceRanker([rows], keyword_embed, EvidenceConfig(margin=1.0)).select(
        "refund", [hit("billing/refunds", "Refunds")])
    assert max(evidence.items, key=lambda e: e.score).unit.text.startswith("Premium")  # the better scored
    asked = stated_fact(evidence, "How many days does a refund take on the free plan?")
    assert asked.sentence == "Free plan refund: 2 days." and asked.facts == {"2"}


def test_a_percentage_answers_how_much_a_fee_is():
    from assistant.dialogue.evidence import AskedFact, stated_fact

    fee = chunk("The refund fee is 15% of the item price.\nExample: an item that cost $80 gets a refund of $68.",
                "billing/refunds", "Refunds", "How much is it?")
    evidence = EvidenceRanker([fee], keyword_embed, EvidenceConfig(margin=1.0)).select(
        "refund", [hit("billing/refunds", "Refunds")])
    asked = stated_fact(evidence, "How much is the refund fee?")
    assert asked.kind == "price" and asked.stated_in("It's 15% of what you paid.")
    assert not asked.stated_in("An item that cost $80 gets $68 back.")  # a price, but the example's, not the fee
    assert not AskedFact("", 0, "number").stated_in("It costs nothing.")
    price = AskedFact("", 0, "price")
    assert price.stated_in("It costs $12.") and not price.stated_in("In 5 days.")


def test_a_question_that_names_something_the_evidence_says_asks_for_the_sentence_that_says_it():
    from assistant.dialogue.evidence import AskedFact, stated_fact

    methods = chunk("You can send a refund by card or by bank transfer.\nRefunds to PayPal are sent the same day.\n"
                    "Bitcoin refunds are not offered for Discover orders.", "billing/refunds", "Refunds", "Methods")
    listed = chunk("- Visa\n- Discover\n- PayPal", "billing/cards", "Cards", "Store orders", position=1)
    hits = [hit("billing/refunds", "Refunds"), hit("billing/cards", "Cards")]
    evidence = EvidenceRanker([methods, listed], keyword_embed, EvidenceConfig(margin=1.0, article_margin=1.0)
                              ).select("refund", hits)
    paypal = stated_fact(evidence, "Can I get my refund on PayPal?")
    assert paypal == AskedFact("Refunds to PayPal are sent the same day.", 1, "name", ("paypal",))
    assert paypal.stated_in("PayPal refunds arrive the same day.") and not paypal.stated_in("Cards take a week.")
    # a sentence that says it wins over a bullet that only names it; the bullet alone is read under its heading
    assert stated_fact(evidence, "Do you take Discover?").sentence == (
        "Bitcoin refunds are not offered for Discover orders.")
    assert stated_fact(evidence, "Do you take Visa?") == AskedFact("Store orders: Visa.", 2, "name", ("visa",))
    assert stated_fact(evidence, "Can I pay with Bitcoin?").kind == "name"
    assert stated_fact(evidence, "Can I pay with Alipay?") is None  # the evidence never says it
    assert stated_fact(evidence, "How do I get a refund on PayPal?") is None  # a how-to: the steps answer it
    assert stated_fact(evidence, "can i get a refund?") is None  # it names nothing


def test_an_article_a_retrieved_one_refers_to_joins_the_evidence_and_outranks_the_pointer():
    pointer = chunk('Refunds need a return first. If the refund is late, see "Refunds".', "billing/returns", "Returns")
    ranker = EvidenceRanker([pointer, REFUNDS], keyword_embed, EvidenceConfig(article_margin=0.0))
    evidence = ranker.select("When is my refund sent?", [hit("billing/returns", "Returns")])
    assert [a.doc_id for a in evidence.articles][0] == "billing/refunds"
    assert evidence.texts()[0] == "Refunds are issued within 5 business days."
    assert ranker.reference(ranker.units("billing/returns")[1]) == "billing/refunds"
    assert ranker.reference(ranker.units("billing/returns")[0]) is None
    screen = chunk('If you see "Refunds" on the screen, tap it.', "billing/screen", "Screens")
    assert EvidenceRanker([screen, REFUNDS], keyword_embed).reference(units_of_chunk(screen)[0]) is None


def test_a_bullet_that_is_no_sentence_brings_its_list_unless_the_question_asks_about_it():
    exclusions = chunk("- Refund abuse\n- Refund fraud\n- Bitcoin refunds\n\nRefunds take 5 business days.",
                       "returns/warranty", "Warranty claims", "What isn't covered")
    hits = [hit("returns/warranty", "Warranty claims")]
    ranker = EvidenceRanker([exclusions], keyword_embed)
    about_the_list = ranker.select("Which refund cases are excluded?", hits)
    listed = [e.unit.text for e in about_the_list.of_article(1)]
    assert listed[:3] == ["Refund abuse", "Refund fraud", "Bitcoin refunds"]
    assert extract_answer(about_the_list) == (
        "What isn't covered:\n- Refund abuse\n- Refund fraud\n- Bitcoin refunds", 1)
    # One item far ahead of the rest is what the question asks about: it stands alone, read under its heading.
    about_one = ranker.select("Are bitcoin payments covered?", hits)
    assert "Refund abuse" not in about_one.texts()[0]
    assert extract_answer(about_one) == ("What isn't covered: Bitcoin refunds.", 1)
    # A bullet that is a sentence, or states a fact of its own, stands alone.
    prices = chunk("- Refund by card: $5 fee\n- Bitcoin refunds are not offered.", "billing/fees", "Fees", "Fees")
    alone = EvidenceRanker([prices], keyword_embed).select("What is the refund fee?", [hit("billing/fees", "Fees")])
    assert extract_answer(alone) == ("Refund by card: $5 fee.", 1)


def test_the_extract_takes_a_companion_from_another_section_only_when_it_brings_a_fact():
    doc, title = "billing/send", "Customer payments"
    intro = chunk("You can send a refund at any time.", doc, title, "", position=0)
    reasons = chunk("- Send refund requests the bank refused again.", doc, title, "Common reasons", position=1)
    limits = chunk("Send a refund over $500 and it needs a second approval.", doc, title, "Limits", position=2)
    hits = [hit(doc, title)]
    question = "Can I send a refund?"
    plain = EvidenceRanker([intro, reasons], keyword_embed).select(question, hits)
    assert len(plain.items) == 2 and extract_answer(plain) == ("You can send a refund at any time.", 1)
    with_fact = EvidenceRanker([intro, limits], keyword_embed).select(question, hits)
    assert extract_answer(with_fact) == (
        "You can send a refund at any time. Send a refund over $500 and it needs a second approval.", 1)
