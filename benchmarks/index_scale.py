"""Index scale: ingestion throughput, search latency at 10k and 100k chunks, IVF recall vs exact.

Texts are templated support questions and answers (combinations of products, problems and
circumstances), so embeddings have the clusters real text has (random vectors have none and no
approximate index keeps recall on them). Embeddings are cached under the data dir between runs.

Figures: ingestion (`KnowledgeIndex.build`) docs/s against the embedder's raw encode speed on the
same texts (ratio, target ≥ 0.8); search latency p50/p95 for exact (flat) and IVF; IVF recall@10
against exact search (target ≥ 0.95 at ≤ half of exact latency). `--json`: one object, last line.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time

import numpy as np

log = logging.getLogger("benchmarks.index_scale")

PRODUCTS = ["Hub", "Cam", "Cam Outdoor", "Thermostat", "Doorbell", "Smart Plug", "Protect plan", "mobile app",
            "web account", "router bridge", "motion sensor", "door lock", "water sensor", "light strip", "siren"]
PROBLEMS = ["keeps going offline", "won't pair", "shows a red light", "drains its battery", "stopped recording",
            "has no sound", "is charged twice", "can't be found", "restarts by itself", "lost its schedule",
            "sends no alerts", "shows the wrong time", "rejects my password", "is very slow", "won't update"]
CIRCUMSTANCES = ["after a firmware update", "since I moved house", "when the Wi-Fi changes", "on the 5 GHz band",
                 "after a power cut", "with a new router", "in cold weather", "since the last invoice",
                 "after resetting it", "when I travel abroad", "with two phones", "on a guest network",
                 "after changing my email", "since adding a second home", "with a VPN on"]
ROOMS = ["in the kitchen", "in the garage", "upstairs", "at the front door", "in the nursery", "in the office",
         "in the garden", "in the basement", "in the hallway", "at my holiday flat"]
SINCE = ["since Monday", "for two weeks", "every night", "this morning", "twice a day", "since the storm",
         "every weekend", "since I got it", "at random times", "since yesterday evening"]
OPENINGS = ["My {p} {r} {q} {c}, {s}.", "Why does the {p} {r} {q} {c} {s}?", "Help: the {p} {r} {q} {c} {s}.",
            "The {p} {r} {q} {c}, {s}. What now?"]


def templated_texts(n: int, seed: int = 0) -> list[str]:
    """`n` distinct texts (1.35 million combinations), in a seeded random order."""
    slots = (PRODUCTS, PROBLEMS, CIRCUMSTANCES, ROOMS, SINCE, OPENINGS)
    total = 1
    for slot in slots:
        total *= len(slot)
    rng = random.Random(seed)
    texts = []
    for number in rng.sample(range(total), n):
        choice = []
        for slot in slots:
            number, index = divmod(number, len(slot))
            choice.append(slot[index])
        p, q, c, r, s, opening = choice
        texts.append(opening.format(p=p, q=q, c=c, r=r, s=s))
    return texts


def cached_vectors(embedder, texts: list[str], path) -> np.ndarray:
    if path.exists():
        vectors = np.load(path)
        if len(vectors) == len(texts):
            return vectors
    log.info("embedding %d texts (cached at %s)", len(texts), path)
    vectors = embedder.encode(texts, show_progress=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def latency(index, queries: np.ndarray, k: int) -> dict[str, float]:
    times = []
    for query in queries:
        start = time.perf_counter()
        index.search(query[None, :], k)
        times.append(time.perf_counter() - start)
    return {"p50_ms": float(np.percentile(times, 50) * 1000), "p95_ms": float(np.percentile(times, 95) * 1000)}


class CachedEmbedder:
    """The real embedder's name and vectors, looked up instead of recomputed (for building big indexes)."""

    def __init__(self, embedder, texts: list[str], vectors: np.ndarray) -> None:
        self.name, self.dimension = embedder.name, embedder.dimension
        self.embedder = embedder
        self.count_tokens = embedder.count_tokens
        self.lookup = {text: vector for text, vector in zip(texts, vectors, strict=True)}

    def encode(self, texts, *, show_progress: bool = False) -> np.ndarray:
        missing = [t for t in texts if t not in self.lookup]
        if missing:
            self.lookup.update(zip(missing, self.embedder.encode(missing), strict=True))
        return np.vstack([self.lookup[t] for t in texts]).astype(np.float32)


def hybrid_latency(texts: list[str], vectors: np.ndarray, embedder, queries: list[str]) -> dict[str, float]:
    """p50/p95 of the whole `Retriever.search` (embed query, FAISS, BM25, fusion) at this size."""
    from knowledge import Document
    from knowledge.index import KnowledgeIndex
    from knowledge.retriever import Retriever

    docs = [Document(f"d{i}", "", text) for i, text in enumerate(texts)]
    cached = CachedEmbedder(embedder, [Document(f"d{i}", "", t).text for i, t in enumerate(texts)], vectors)
    index = KnowledgeIndex.build(docs, cached)
    retriever = Retriever(index, embedder)
    times = []
    for query in queries:
        start = time.perf_counter()
        retriever.search(query, k=5)
        times.append(time.perf_counter() - start)
    return {"p50_ms": float(np.percentile(times, 50) * 1000), "p95_ms": float(np.percentile(times, 95) * 1000),
            "index_type": index.card["config"]["index_type"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="collection sizes, comma-separated")
    parser.add_argument("--ingest-docs", type=int, default=2000, help="documents for the ingestion comparison")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    from assistant.config import load_settings
    from knowledge import Document
    from knowledge.dense import DenseConfig, new_dense_index
    from knowledge.embedder import load_embedder
    from knowledge.index import KnowledgeIndex

    settings = load_settings()
    embedder = load_embedder(settings.embedder)
    cache = settings.data_dir / "benchmarks" / "index-scale"
    result: dict = {"baseline": "exact (flat) search; raw embedder encode for ingestion"}

    embedder.encode(templated_texts(64, seed=3))  # warm-up, so neither side pays for the first batch
    # Ingestion: the whole build (load → chunk → embed → FAISS + BM25) against raw encode of the same texts.
    answers = templated_texts(args.ingest_docs, seed=1)
    docs = [Document(f"kb/{i}", f"Article {i}", f"{text} Open the app, go to Settings and follow the steps.")
            for i, text in enumerate(answers)]
    start = time.perf_counter()
    built = KnowledgeIndex.build(docs, embedder)
    build_s = time.perf_counter() - start
    texts = [chunk.embedding_text for chunk in built.chunks]
    start = time.perf_counter()
    embedder.encode(texts)
    encode_s = time.perf_counter() - start
    result["ingestion"] = {"documents": len(docs), "chunks": len(texts), "build_docs_per_s": len(docs) / build_s,
                           "raw_encode_texts_per_s": len(texts) / encode_s, "throughput_ratio": encode_s / build_s}
    log.info("ingestion: %s", result["ingestion"])

    queries_text = templated_texts(args.queries, seed=99)
    queries = embedder.encode(queries_text)
    config = DenseConfig()
    result["search"] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        texts = templated_texts(size, seed=7)
        vectors = cached_vectors(embedder, texts, cache / f"vectors-v2-{size}.npy")
        ids = np.arange(size, dtype=np.int64)
        exact = new_dense_index(vectors, ids, "flat")
        approximate = new_dense_index(vectors, ids, "ivf", config)
        k = 10
        _, truth = exact.search(queries, k)
        _, found = approximate.search(queries, k)
        recall = float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found, strict=True)]))
        flat_latency = latency(exact, queries, k)
        ivf_latency = latency(approximate, queries, k)
        result["search"][str(size)] = {
            "flat": flat_latency, "ivf": ivf_latency, "ivf_nprobe": approximate.nprobe,
            "ivf_nlist": approximate.nlist,
            "ivf_recall@10": recall, "ivf_p50_latency_ratio": flat_latency["p50_ms"] / ivf_latency["p50_ms"],
            "index_type_chosen": config.kind_for(size),
            "hybrid_search": hybrid_latency(texts, vectors, embedder, queries_text),
        }
        log.info("%d chunks: %s", size, result["search"][str(size)])

    for key, value in result.items():
        print(f"{key}: {value}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
