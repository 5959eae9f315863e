import numpy as np
import pytest

from knowledge import Document, KnowledgeError
from knowledge.embedder import HashEmbedder
from knowledge.index import KnowledgeIndex
from knowledge.ranking import FEATURES, RankingWeights, fit_ranking, scaled_single, single_feature
from knowledge.retriever import Retriever, RetrieverConfig, refers_back
from knowledge.tuning import DevQuestion, tune_ranking

DOCS = [
    Document("bridge:faq:wifi", "Bridge Guest House", "Is there WiFi? Free WiFi in all rooms."),
    Document("bridge:faq:parking", "Bridge Guest House", "Is there parking? Free parking on site."),
    Document("bridge:review:1", "Bridge Guest House", "The wifi was slow in our room but the breakfast was great."),
    Document("bridge:review:2", "Bridge Guest House", "Parking was easy and the staff were friendly."),
    Document("ashley:faq:wifi", "Ashley Hotel", "Is there WiFi? WiFi costs 5 pounds a day."),
    Document("ashley:faq:parking", "Ashley Hotel", "Is there parking? Parking costs 10 pounds."),
    Document("ashley:review:1", "Ashley Hotel", "The wifi kept dropping and the room was cold."),
    Document("refunds", "Refund policy", "Refunds reach your card within ten business days."),
    Document("shipping", "Shipping costs", "Standard shipping is free on orders over 50 dollars."),
]


def _dev_questions():
    about = [{"role": "user", "content": "Tell me about the Ashley Hotel"},
             {"role": "assistant", "content": "It is a 2 star hotel in the north."}]
    return [
        DevQuestion("is there wifi?", frozenset({"ashley:faq:wifi"}), tuple(about), "faq"),
        DevQuestion("can I park my car there?", frozenset({"ashley:faq:parking"}), tuple(about), "faq"),
        DevQuestion("is there wifi at bridge guest house?", frozenset({"bridge:faq:wifi"}), (), "faq"),
        DevQuestion("parking at bridge guest house?", frozenset({"bridge:faq:parking"}), (), "faq"),
        DevQuestion("how long do refunds take to reach my card", frozenset({"refunds"}), (), "help"),
        DevQuestion("is shipping free", frozenset({"shipping"}), (), "help"),
        DevQuestion("was the wifi reliable for guests?", frozenset({"ashley:review:1"}), tuple(about), "review"),
    ]


def _keyword_marks_gold(seed, questions, noise=0.3, candidates=8):
    """Random candidate features where the gold candidate is (nearly) the one with the highest keyword feature."""
    rng = np.random.default_rng(seed)
    queries = []
    for _ in range(questions):
        features = rng.normal(size=(candidates, len(FEATURES)))
        gold = np.zeros(candidates, dtype=bool)
        gold[np.argmax(features[:, FEATURES.index("keyword")] + noise * rng.normal(size=candidates))] = True
        queries.append((features, gold))
    return queries


def test_fit_learns_which_feature_marks_the_gold_candidate():
    queries = _keyword_marks_gold(0, 60)
    weights = fit_ranking(queries, l2=0.1)
    learned = dict(zip(FEATURES, weights.weights, strict=True))
    assert learned["keyword"] == max(learned.values()) and learned["keyword"] > 1.0
    hits = [gold[np.argmax(weights.score(features))] for features, gold in queries]
    assert np.mean(hits) > 0.8


def test_a_strong_penalty_keeps_the_prior_a_weak_one_trusts_the_data():
    queries = _keyword_marks_gold(1, 40, noise=0.0)
    prior = scaled_single(queries, "dense")
    assert prior.weights[0] > 0 and not any(prior.weights[1:])  # FEATURES[0] is "dense"
    kept = fit_ranking(queries, l2=1e6, prior=prior)
    assert np.allclose(kept.weights, prior.weights, atol=1e-2)
    learned = fit_ranking(queries, l2=0.1, prior=prior)
    assert int(np.argmax(learned.weights)) == FEATURES.index("keyword")


def test_fit_needs_questions_whose_gold_was_found():
    empty = [(np.zeros((3, len(FEATURES))), np.zeros(3, dtype=bool))] * 10
    with pytest.raises(KnowledgeError, match="at least 5 dev questions"):
        fit_ranking(empty)


def test_weights_from_another_feature_set_are_refused():
    with pytest.raises(KnowledgeError, match="kb tune"):
        RankingWeights.from_dict({"dense": 1.0})
    weights = single_feature("dense")
    assert RankingWeights.from_dict(weights.as_dict()) == weights


def test_tuned_weights_are_stored_used_and_never_below_a_single_ranking():
    retriever = Retriever(KnowledgeIndex.build(DOCS, HashEmbedder()), HashEmbedder())
    record = tune_ranking(retriever, _dev_questions(), "dev.jsonl")
    assert retriever.index.card["ranking"] is record and record["n"] == 7
    assert set(record["weights"]) == set(FEATURES) and record["fitted_on"] == "dev.jsonl"
    for group, figures in record["dev"].items():
        for metric in ("hit@1", "hit@5", "mrr"):
            best_single = max(single[group][metric] for single in record["dev_single"].values())
            assert figures[metric] >= best_single - 1e-9, (group, metric)
    assert retriever.weights == RankingWeights.from_dict(record["weights"])
    hits = retriever.search("is there wifi?", history=_dev_questions()[0].history, k=3)
    assert hits and hits[0].title == "Ashley Hotel"
    assert all(0.0 <= hit.confidence <= 1.0 and hit.similarity is not None for hit in hits)


def test_configured_weights_override_the_index_card():
    index = KnowledgeIndex.build(DOCS, HashEmbedder())
    index.card["ranking"] = {"weights": single_feature("keyword").as_dict()}
    dense_only = Retriever(index, HashEmbedder(), RetrieverConfig(weights=single_feature("dense"), focus=False))
    assert dense_only.weights == single_feature("dense")
    assert Retriever(index, HashEmbedder()).weights == single_feature("keyword")


def test_query_history_turns_sets_how_many_user_turns_join_the_query():
    history = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "reply"},
               {"role": "user", "content": "second"}]
    index = KnowledgeIndex.build(DOCS, HashEmbedder())
    assert Retriever(index, HashEmbedder(), RetrieverConfig(query_history_turns=1)).conversational_query(
        "third", history) == "second third"
    assert Retriever(index, HashEmbedder(), RetrieverConfig(query_history_turns=0)).conversational_query(
        "third", history) == "third"


def test_a_new_topic_is_searched_alone_and_a_follow_up_with_the_conversation():
    index = KnowledgeIndex.build(DOCS, HashEmbedder())
    refunds = [{"role": "user", "content": "When do refunds reach my card? Refund policy please, refunds refunds"},
               {"role": "assistant", "content": "Within ten business days."}]
    switching, staying = (Retriever(index, HashEmbedder(), RetrieverConfig(topic_switch_margin=margin))
                          for margin in (0.0, None))
    new_topic = "Is standard shipping free on orders over 50 dollars?"
    assert "refunds" in [h.doc_id for h in staying.search(new_topic, history=refunds, k=3)]  # the old topic lingers
    assert "refunds" not in [h.doc_id for h in switching.search(new_topic, history=refunds, k=3)]
    assert switching.search("is it free?", history=refunds, k=1)[0].doc_id == "refunds"  # refers back: stays
    # the conversational query can match the earlier turns' article best only because it holds those turns: the
    # message alone does not find it among its candidates (one chunk per ranking here)
    twice = [*refunds, {"role": "user", "content": "Do refunds reach my card in ten business days?"},
             {"role": "assistant", "content": "Yes."}]
    narrow = {margin: Retriever(index, HashEmbedder(), RetrieverConfig(candidates=1, topic_switch_margin=margin))
              for margin in (0.0, None)}
    assert narrow[None].search("What are your shipping costs?", history=twice, k=1)[0].doc_id == "refunds"
    assert narrow[0.0].search("What are your shipping costs?", history=twice, k=1)[0].doc_id == "shipping"
    ashley = [{"role": "user", "content": "Tell me about the Ashley Hotel"},
              {"role": "assistant", "content": "It is a 2 star hotel in the north."}]
    assert switching.search("Is there WiFi in the rooms?", history=ashley, k=1)[0].doc_id == "ashley:faq:wifi"


@pytest.mark.parametrize(("message", "expected"), [
    ("is it open on saturday?", True), ("what about the UK?", True), ("ok and how long do I have?", True),
    ("can I stack that with a promo code?", True), ("How long does standard shipping take?", False),
    ("My camera shows as offline", False), ("Is there a student discount?", False), ("For the UK?", True),
    ("Do you ship there?", True), ("Can I get a refund instead?", True), ("Same for the Pro model?", True),
    ("batteries too?", True), ("How much is the one with 4K?", True)])
def test_refers_back_reads_pronouns_and_openers(message, expected):
    assert refers_back(message) is expected


def test_too_few_dev_questions_fit_nothing_but_still_choose_weights():
    retriever = Retriever(KnowledgeIndex.build(DOCS, HashEmbedder()), HashEmbedder())
    record = tune_ranking(retriever, _dev_questions()[:2], "tiny.jsonl")
    assert [t["name"] for t in record["tried"]] == ["default weights"]
    assert record["chosen"] == "default weights" or record["chosen"].startswith("single ranking")
