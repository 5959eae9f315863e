import numpy as np
import pytest

from knowledge import Document, KnowledgeError
from knowledge.calibration import calibrate, fit_logistic
from knowledge.embedder import HashEmbedder
from knowledge.index import KnowledgeIndex
from knowledge.retriever import Retriever


def test_fit_recovers_a_known_curve():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 4000)
    y = rng.uniform(0, 1, 4000) < 1 / (1 + np.exp(-12 * (x - 0.4)))
    midpoint, slope = fit_logistic(x, y)
    assert midpoint == pytest.approx(0.4, abs=0.03) and slope == pytest.approx(12, rel=0.2)


def test_fit_refuses_one_sided_or_inverted_labels():
    with pytest.raises(KnowledgeError, match="both answerable and unanswerable"):
        fit_logistic([0.1, 0.2, 0.3, 0.4], [True] * 4)
    with pytest.raises(KnowledgeError, match="do not score higher"):
        fit_logistic([0.9, 0.8, 0.2, 0.1], [False, False, True, True])


def test_calibration_is_stored_and_used_by_the_retriever():
    docs = [Document("refunds", "Refunds", "Refunds reach your card within ten business days."),
            Document("wifi", "Wi-Fi setup", "Connect the hub to a 2.4 GHz Wi-Fi network.")]
    retriever = Retriever(KnowledgeIndex.build(docs, HashEmbedder()), HashEmbedder())
    questions = [("refunds card business days", (), True), ("hub wifi network", (), True),
                 ("banana bread recipe", (), False), ("football scores tonight", (), False)]
    record = calibrate(retriever, questions, "dev.jsonl")
    assert retriever.index.card["calibration"] is record and record["n"] == 4 and record["dev_accuracy"] == 1.0
    on_topic = retriever.search("refunds card", k=1)[0]
    off_topic = retriever.search("banana bread recipe", k=1)
    assert on_topic.confidence > 0.5 and (not off_topic or off_topic[0].confidence < 0.5)
