"""CheckedStream: only complete, checked, non-repeated sentences of a draft reach the customer."""

import re

from assistant.dialogue.checked_stream import CheckedStream
from assistant.dialogue.evidence import AskedFact
from assistant.dialogue.grounding import GroundingChecker

EVIDENCE = ("A reset link is valid for 60 minutes and can be used once.\n"
            "Open the Northwind Home app and tap Forgot password? on the sign-in screen.\n"
            "Enter your email address and tap Send reset link.")


def pieces(draft):
    """The draft cut as a model streams it: a word and its trailing space at a time."""
    return iter(re.findall(r"\S+\s*", draft))


def released(draft, **options):
    """(what the customer is shown, the stream's report) for a whole draft."""
    stream = CheckedStream(GroundingChecker([EVIDENCE], contexts=["Reset your password"]), **options)
    shown = [*stream.feed(pieces(draft)), *stream.finish()]
    return "".join(shown), stream.report


def test_a_looping_draft_shows_each_sentence_once_and_stops():
    stream = CheckedStream(GroundingChecker([EVIDENCE]))
    draft = pieces("A reset link is valid for 60 minutes. " * 20)
    shown = [*stream.feed(draft), *stream.finish()]
    assert shown == ["A reset link is valid for 60 minutes."]
    assert stream.report.stopped == "loop" and next(draft, None) is not None  # the model was cut off


def test_table_rows_and_a_sentence_cut_off_at_the_end_are_held_back():
    text, report = released("| Premium | $11.99/month |\nA reset link is valid for 60 minutes [1]. "
                            "Then open the email and tap")
    assert text == "A reset link is valid for 60 minutes." and report.removed == 2


def test_citation_markers_or_a_list_number_alone_release_nothing():
    for draft in ["[1] [2]", "[1].", "2.", "1. [1]"]:
        text, report = released(draft)
        assert text == "" and report.shown == [], draft


def test_a_one_word_fragment_is_held_back_even_when_its_word_is_in_the_evidence():
    text, report = released("Tap Send (Reset)\nSend)")
    assert "Send)" not in text.split() and report.removed >= 1


def test_surviving_list_items_are_renumbered_on_their_own_lines():
    text, report = released("1. Enter your email address and tap Send reset link [1].\n"
                            "2. Pay our CEO $5 for a faster reset.\n"
                            "3. A reset link is valid for 60 minutes [1].")
    assert text == ("1. Enter your email address and tap Send reset link.\n"
                    "2. A reset link is valid for 60 minutes.")
    assert report.removed == 1 and report.articles == [0]


def test_lines_written_without_a_full_stop_are_shown_as_sentences():
    text, _ = released("A reset link is valid for 60 minutes\nIt can be used once\n"
                       "1. Enter your email address and tap Send reset link")
    assert text == ("A reset link is valid for 60 minutes. It can be used once.\n\n"
                    "1. Enter your email address and tap Send reset link")


def test_a_lead_in_is_shown_only_with_the_list_it_leads():
    fee = ("We charge the fee when a returned item:\n- comes back without its original packaging,\n"
           "- is missing accessories.\nA restocking fee only applies when we can't resell a returned item.")
    lead = ["We charge the fee when a returned item:"]
    stream = CheckedStream(GroundingChecker([fee], contexts=["Restocking fee"]), leads=lead)
    draft = ("We charge the fee when a returned item: A restocking fee only applies when we can't resell a returned "
             "item.")
    text = "".join([*stream.feed(pieces(draft)), *stream.finish()])
    assert text == "A restocking fee only applies when we can't resell a returned item."
    assert stream.report.removed == 1
    stream = CheckedStream(GroundingChecker([fee], contexts=["Restocking fee"]), leads=lead)
    listed = ("We charge the fee when a returned item:\n- comes back without its original packaging,\n"
              "- is missing accessories.")
    text = "".join([*stream.feed(pieces(listed)), *stream.finish()])
    assert text.startswith("We charge the fee when a returned item:\n") and "missing accessories" in text
    stream = CheckedStream(GroundingChecker([fee], contexts=["Restocking fee"]), leads=lead)
    text = "".join([*stream.feed(pieces("We charge the fee when a returned item:")), *stream.finish()])
    assert text == "" and stream.report.removed == 1  # nothing after it: it leads nothing
    stream = CheckedStream(GroundingChecker([fee], contexts=["Restocking fee"]), leads=lead)
    run_in = "We charge the fee when a returned item: comes back without its original packaging."
    assert "".join([*stream.feed(pieces(run_in)), *stream.finish()]) == run_in  # its own item: checked whole


def test_an_unsupported_sentence_never_appears():
    text, report = released("A reset link is valid for 60 minutes [1]. Each reset costs $4.99 and works for 9 years.")
    assert text == "A reset link is valid for 60 minutes."
    assert report.before == 0.5 and report.after == 1.0 and report.removed == 1


def test_a_bare_yes_followed_by_an_unsupported_claim_releases_nothing():
    assert released("Yes. The reset link also works with Google Home.")[0] == ""
    assert released("Yes.")[0] == ""
    assert released("Yes. A reset link is valid for 60 minutes.")[0] == "Yes. A reset link is valid for 60 minutes."


def test_a_question_mark_inside_a_label_does_not_cut_the_sentence():
    sentence = "Open the app and tap Forgot password? on the sign-in screen."
    _, report = released(sentence)
    assert [shown.strip() for shown, _ in report.shown] == [sentence]  # checked whole, not "on the sign-in screen."
    text, _ = released("1. Open the app and tap Forgot password? on the sign-in screen.\n"
                       "2. Enter your email address and tap Send reset link.")
    assert text == ("1. Open the app and tap Forgot password? on the sign-in screen.\n"
                    "2. Enter your email address and tap Send reset link.")


RETURNS = ("You can return most Northwind devices bought from our online store, opened or unopened.\n"
           "You have 30 days from the delivery date to start a return.\n"
           "The delivery date is the one shown in your tracking, not the date you placed the order.\n"
           "Your return is on time if you create the return in the returns portal within the window.")
FACT = AskedFact("You have 30 days from the delivery date to start a return.", 1, facts=frozenset({"30"}))


def returns_stream(draft, fact=FACT):
    stream = CheckedStream(GroundingChecker([RETURNS], contexts=["How long do I have to return something?"]),
                           fact=fact)
    return "".join([*stream.feed(pieces(draft)), *stream.finish()]), stream.report


def test_a_reply_to_a_fact_question_that_states_none_is_led_by_the_evidence_that_does():
    text, report = returns_stream("The delivery date is the one shown in your tracking, not the date you placed "
                                  "the order.")
    assert text == ("You have 30 days from the delivery date to start a return. The delivery date is the one "
                    "shown in your tracking, not the date you placed the order.")
    assert report.fact_quoted and report.quoted == 1 and report.articles == [0]


def test_a_sentence_without_the_fact_waits_for_the_one_that_states_it():
    text, report = returns_stream("Your return is on time if you create the return in the returns portal within "
                                  "the window. You have 30 days from the delivery date to start a return.")
    assert text.startswith("You have 30 days from the delivery date") and "returns portal" in text
    assert not report.fact_quoted and report.quoted == 0


def test_a_fact_of_another_sentence_does_not_answer_what_was_asked():
    holiday = "Items delivered between November 15 and December 31 can be returned until January 31 of the next year."
    checker = GroundingChecker([f"{RETURNS}\n{holiday}"], contexts=["How long do I have to return something?"])
    stream = CheckedStream(checker, fact=FACT)
    text = "".join([*stream.feed(pieces(holiday)), *stream.finish()])
    assert text == f"You have 30 days from the delivery date to start a return. {holiday}"
    assert stream.report.fact_quoted


def test_a_reply_that_never_says_what_the_question_names_is_led_by_the_evidence_that_does():
    # "Can I return it if it was opened?" names nothing; "Is a Northwind device I opened returnable?" does
    named = AskedFact("You can return most Northwind devices bought from our online store, opened or unopened.", 1,
                      "name", ("northwind",))
    text, report = returns_stream("You have 30 days from the delivery date to start a return.", fact=named)
    assert text == ("You can return most Northwind devices bought from our online store, opened or unopened. "
                    "You have 30 days from the delivery date to start a return.")
    assert report.fact_quoted and report.quoted == 1
    said, report = returns_stream("You can return most Northwind devices bought from our online store, opened or "
                                  "unopened.", fact=named)
    assert not report.fact_quoted and said.startswith("You can return most Northwind devices")


def test_without_a_fact_to_ask_for_sentences_come_in_the_drafts_order():
    draft = "The delivery date is the one shown in your tracking, not the date you placed the order."
    text, report = returns_stream(draft, fact=None)
    assert text == draft and not report.fact_quoted


def test_sentences_written_before_the_steps_follow_them_and_repeats_of_a_step_are_dropped():
    steps = ["Open the Northwind Home app and tap Forgot password? on the sign-in screen.",
             "Enter your email address and tap Send reset link."]
    text, report = released("A reset link is valid for 60 minutes and can be used once. Enter your email address "
                            "and tap Send reset link.", procedure=steps)
    assert text == ("1. Open the Northwind Home app and tap Forgot password? on the sign-in screen.\n"
                    "2. Enter your email address and tap Send reset link.\n\n"
                    "A reset link is valid for 60 minutes and can be used once.")
    assert report.quoted == 2 and report.removed >= 1


def test_a_sentence_after_the_steps_that_repeats_one_of_them_is_dropped():
    steps = ["Open the Northwind Home app and tap Forgot password? on the sign-in screen.",
             "Enter your email address and tap Send reset link."]
    text, report = released("1. Open the Northwind Home app and tap Forgot password? on the sign-in screen.\n"
                            "Enter your email address and tap Send reset link.", procedure=steps)
    assert text.count("Send reset link") == 1 and report.quoted == 2  # the model's one step was not the procedure


def test_a_reply_holds_one_procedure_a_step_of_another_after_it_is_dropped():
    steps = ["Open the Northwind Home app and tap Forgot password? on the sign-in screen.",
             "Enter your email address and tap Send reset link."]
    other = "Slide the doorbell back onto the plate until it clicks."  # a step of another article's procedure
    checker = GroundingChecker([EVIDENCE, f"1. {other}"], contexts=["Reset your password", "Doorbell battery"])
    stream = CheckedStream(checker, procedure=steps)
    draft = ("1. Open the Northwind Home app and tap Forgot password? on the sign-in screen.\n"
             "2. Enter your email address and tap Send reset link.\n"
             f"A reset link is valid for 60 minutes and can be used once.\n3. {other}\n- {other}")
    text = "".join([*stream.feed(pieces(draft)), *stream.finish()])
    assert text == ("1. Open the Northwind Home app and tap Forgot password? on the sign-in screen.\n"
                    "2. Enter your email address and tap Send reset link.\n\n"
                    "A reset link is valid for 60 minutes and can be used once.")
    assert stream.report.removed == 2  # the other step, and its repeat as a bullet


def test_a_sentence_that_continues_a_step_on_its_line_goes_with_that_step():
    steps = ["Open the Northwind Home app and tap Forgot password? on the sign-in screen.",
             "Enter your email address and tap Send reset link."]
    link = "A reset link is valid for 60 minutes and can be used once."
    replaced, report = released(f"1. Enter your email address and tap Send reset link. {link}\n", procedure=steps)
    assert replaced == ("1. Open the Northwind Home app and tap Forgot password? on the sign-in screen.\n"
                        "2. Enter your email address and tap Send reset link.")  # the model's step and its tail
    assert report.quoted == 2
    kept, _ = released(f"1. {steps[0]}\n2. {steps[1]} {link}", procedure=steps)
    assert kept == f"1. {steps[0]}\n2. {steps[1]} {link}"  # the model's steps cover the procedure: shown whole
    after, _ = released(f"1. Enter your email address and tap Send reset link.\n{link}", procedure=steps)
    assert after.endswith(f"\n\n{link}")  # on a line of its own, it is a sentence of the reply


def test_a_yes_with_nothing_of_its_own_is_checked_with_the_sentence_it_opens():
    assert released("Yes, you do. The reset link also works with Google Home.")[0] == ""
    assert released("No, it isn't. A reset link is valid for 60 minutes.")[0] == ""  # the polarity disagrees


def test_a_yes_before_a_negation_is_dropped_and_the_claim_stands_on_its_own():
    once = "Yes, a reset link can't be used more than once."
    evidence = "A reset link is valid for 60 minutes. A reset link can't be used more than once."
    stream = CheckedStream(GroundingChecker([evidence], contexts=["Reset your password"]))
    assert "".join([*stream.feed(pieces(once)), *stream.finish()]) == "A reset link can't be used more than once."
    stream = CheckedStream(GroundingChecker([evidence], contexts=["Reset your password"]))
    assert "".join([*stream.feed(pieces("Yes. A" + once[6:])), *stream.finish()]) == (
        "A reset link can't be used more than once.")  # a bare "Yes." joined to it too
    assert released("Yes, a reset link is valid for 60 minutes.")[0] == "Yes, a reset link is valid for 60 minutes."


def test_held_sentences_that_passed_are_shown_after_the_fact_even_when_the_draft_went_off_the_evidence():
    text, report = returns_stream("You can return most Northwind devices bought from our online store. Your return "
                                  "is on time if you create the return in the returns portal within the window. "
                                  "Bitcoin is free. Zelle is free. Tesla is free.")
    assert text.startswith("You have 30 days") and "online store" in text and "returns portal" in text
    assert report.stopped == "off_evidence" and report.removed == 3 and "Bitcoin" not in text


def test_a_reply_that_never_states_the_fact_still_streams_and_ends():
    stream = CheckedStream(GroundingChecker([RETURNS], contexts=["How long do I have to return something?"]),
                           fact=FACT, max_sentences=3)
    draft = pieces("The delivery date is the one shown in your tracking. Your return is on time if you create the "
                   "return in the returns portal within the window. It is the one shown in your tracking, not the "
                   "date you placed the order. " * 3)
    early = list(stream.feed(draft))
    assert early and early[0] == FACT.sentence and stream.report.stopped == "enough"
    assert next(draft, None) is not None  # the model was stopped, not read to its end


def test_steps_that_state_the_fact_are_not_followed_by_a_quote_of_it():
    steps = ["Open the returns portal.", "Create the return within 30 days of delivery."]
    stream = CheckedStream(GroundingChecker([RETURNS + "\n" + "\n".join(steps)]), procedure=steps, fact=FACT)
    draft = ("1. Open the returns portal.\n2. Create the return within 30 days of delivery.\n"
             "You can return most Northwind devices bought from our online store.")
    text = "".join([*stream.feed(pieces(draft)), *stream.finish()])
    assert "You have 30 days" not in text and not stream.report.fact_quoted and "online store" in text


def test_a_list_without_the_fact_is_followed_by_it():
    text, report = returns_stream("- The delivery date is the one shown in your tracking.\n- Your return is on time "
                                  "if you create the return in the returns portal within the window.")
    assert text.endswith("You have 30 days from the delivery date to start a return.") and report.fact_quoted
