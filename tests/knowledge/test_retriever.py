from knowledge import Document
from knowledge.embedder import HashEmbedder
from knowledge.index import KnowledgeIndex
from knowledge.retriever import Retriever


def _retriever(docs):
    return Retriever(KnowledgeIndex.build(docs, HashEmbedder()), HashEmbedder())


def test_one_hit_per_document_best_chunk_first():
    docs = [Document("a", "Plans", "## Premium\nPremium costs $9.99 a month.\n\n## Plus\nPlus costs $4.99 a month."),
            Document("b", "Shipping", "Standard shipping takes 3-5 days.")]
    hits = _retriever(docs).search("premium plan price", k=5)
    assert [h.doc_id for h in hits].count("a") == 1
    assert hits[0].doc_id == "a" and "Premium" in hits[0].text


def test_follow_up_uses_the_conversation_history():
    docs = [Document("hub", "Northwind Hub", "The Hub costs $129 and pairs up to 50 devices."),
            Document("cam", "Northwind Cam", "The Cam costs $89 and records 1080p video.")]
    retriever = _retriever(docs)
    history = [{"role": "user", "content": "Tell me about the Northwind Cam"},
               {"role": "assistant", "content": "It is our indoor camera."}]
    assert retriever.search("how much does it cost?", history=history, k=1)[0].doc_id == "cam"


def test_metadata_filters():
    docs = [Document("en", "Refunds", "Refunds take 5 days.", metadata={"lang": "en"}),
            Document("de", "Refunds", "Refunds take 5 days.", metadata={"lang": "de"})]
    hits = _retriever(docs).search("refunds", k=5, filters={"lang": "de"})
    assert [h.doc_id for h in hits] == ["de"]


def test_confidence_separates_on_topic_from_off_topic():
    docs = [Document("refunds", "Refund policy", "Refunds are issued within 14 days of the return.")]
    retriever = _retriever(docs)
    on_topic = retriever.search("refund policy issued within days", k=1)[0].confidence
    off_topic = retriever.search("what is the weather in paris", k=1)
    assert not off_topic or off_topic[0].confidence < on_topic


def test_follow_up_finds_the_entity_the_assistant_named_turns_ago():
    docs = [Document("bridge:faq:wifi", "Bridge Guest House", "Is there WiFi? Free WiFi in all rooms."),
            Document("bridge:faq:parking", "Bridge Guest House", "Is there parking? Free parking on site."),
            Document("ashley:faq:wifi", "Ashley Hotel", "Is there WiFi? WiFi costs 5 pounds a day."),
            Document("ashley:faq:parking", "Ashley Hotel", "Is there parking? Parking costs 10 pounds."),
            Document("general", "Booking help", "Is there a fee to book? Booking is free.")]
    retriever = _retriever(docs)
    history = [{"role": "user", "content": "I need a guesthouse in the north."},
               {"role": "assistant", "content": "The Ashley Hotel and Bridge Guest House both match."},
               {"role": "user", "content": "Tell me more about the Ashley Hotel"},
               {"role": "assistant", "content": "It is a moderately priced hotel with 2 stars."},
               {"role": "user", "content": "Great, book it for two nights."},
               {"role": "assistant", "content": "Done, your reference is 8X2."}]
    assert retriever.search("is there wifi there?", history=history, k=1)[0].doc_id == "ashley:faq:wifi"
    assert retriever.search("is there wifi at bridge guest house?", history=history, k=1)[0].doc_id == \
        "bridge:faq:wifi"


def test_entities_need_titles_shared_by_several_documents():
    from knowledge.entities import EntityTitles, normalise

    assert normalise("The A&B Guest-House") == "a and b guest house"
    index = KnowledgeIndex.build([Document("a", "Reset your password", "Tap Forgot password."),
                                  Document("b", "Refunds", "Refunds take 5 days.")], HashEmbedder())
    assert not EntityTitles(index.chunks)  # one article per title: nothing to focus on


def test_selective_filter_still_finds_its_documents():
    docs = [Document(f"en{i}", "Refunds", f"Refunds take {i} days.", metadata={"lang": "en"}) for i in range(80)]
    docs.append(Document("fr", "Remboursements", "Les remboursements prennent 5 jours.", metadata={"lang": "fr"}))
    hits = _retriever(docs).search("refunds take days", k=3, filters={"lang": "fr"})
    assert [h.doc_id for h in hits] == ["fr"]


def test_a_turns_question_is_embedded_once_for_retrieval_and_evidence(settings):
    """The retriever's query encoder is cached and shared with the evidence ranker."""
    import threading

    import numpy as np

    from assistant.bootstrap import open_retriever
    from assistant.dialogue.manager import evidence_ranker

    retriever = open_retriever(settings)
    ranker = evidence_ranker(settings, retriever)
    encoded: list[str] = []
    encode = retriever.query_vectors.encode
    retriever.query_vectors.encode = lambda texts: encoded.extend(texts) or encode(texts)
    question = "How long is the password reset link valid?"
    hits = retriever.search(question)
    assert ranker.select(question, hits) and encoded == [question]
    retriever.query_vectors.clear()
    ranker.select(question, hits)
    assert encoded == [question, question]  # cleared: embedded again
    # many threads at once get the same vectors as one alone
    alone = retriever.query_vectors([f"question {i}" for i in range(50)])
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(retriever.query_vectors(
        [f"question {i}" for i in range(50)]))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and all(np.array_equal(r, alone) for r in results)
