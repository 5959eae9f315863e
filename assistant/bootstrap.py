"""Assemble the serving parts from settings, creating what is missing on first use.

First use converts the embedded model, builds the default index from the demo help center and
brings the store schema up to date; later uses load them in seconds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from assistant.classify import open_classifier
from assistant.config import Settings
from assistant.dialogue import DialogueManager
from assistant.errors import ConfigError
from assistant.generation import Generator
from assistant.store import Store
from knowledge.chunking import ChunkingConfig
from knowledge.embedder import Embedder, load_embedder
from knowledge.index import KnowledgeIndex
from knowledge.ingest import build_index
from knowledge.retriever import Retriever, RetrieverConfig

log = logging.getLogger(__name__)


def index_path(settings: Settings, index: str | None = None) -> Path:
    """Folder of the named (or configured) index."""
    return settings.artifact_path("index", index or settings.index)


def open_index(settings: Settings, embedder: Embedder, index: str | None = None) -> KnowledgeIndex:
    """The configured index; the default one is built from the demo help center when missing."""
    from knowledge.demo_data import ARTICLES_DIR, DEVSET

    name = index or settings.index
    path = index_path(settings, name)
    if name == "default" and not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # an unwritable data dir fails here, before any work
            log.info("building the default index from the demo help center (once)")
            built = build_index([ARTICLES_DIR], path, embedder, chunking=chunking(settings))[0]
            calibrate_index(Retriever(built, embedder), DEVSET)
            built.save(path)
        except OSError as err:
            raise ConfigError(f"cannot write the default index to {path} ({err.strerror}): set ASSISTANT_DATA_DIR "
                              "to a folder this process can write, or ASSISTANT_INDEX to a built index") from err
        return built
    return KnowledgeIndex.load(path)


def calibrate_index(retriever: Retriever, devset: Path) -> dict:
    """Fit the retriever's ranking weights, then its confidence, on a labelled dev set (stored in the
    index card when saved); the confidence record is returned."""
    from assistant.evaluation.testsets import load_testset
    from knowledge.calibration import calibrate
    from knowledge.tuning import DevQuestion, tune_ranking

    items = load_testset(devset, retriever.index.document_hashes)
    ranking = tune_ranking(retriever, [DevQuestion(i.question, frozenset(i.gold_doc_ids), i.history, i.group or "all")
                                       for i in items if i.answerable and i.gold_doc_ids], str(devset))
    log.info("ranking weights from %s: %s; dev hit@5 %.3f, mrr %.3f", devset.name, ranking["chosen"],
             ranking["dev"]["all"]["hit@5"], ranking["dev"]["all"]["mrr"])
    record = calibrate(retriever, [(i.question, i.history, i.answerable) for i in items], str(devset))
    log.info("calibrated confidence on %s: midpoint=%.3f slope=%.1f dev_accuracy=%.3f", devset.name,
             record["midpoint"], record["slope"], record["dev_accuracy"])
    return record


def open_retriever(settings: Settings, embedder: Embedder | None = None, index: str | None = None) -> Retriever:
    """The hybrid retriever over the configured index, ranking with the weights fitted for it."""
    embedder = embedder or load_embedder(settings.embedder)
    return Retriever(open_index(settings, embedder, index), embedder, RetrieverConfig())


def open_llama_cpp(settings: Settings, adapter: str | None = None) -> Generator:
    """The base model's GGUF on llama.cpp, with the adapter converted to a GGUF LoRA."""
    from assistant.generation import cpu_threads
    from assistant.generation_worker import cpu_slots
    from assistant.llama_cpp_generation import LlamaCppGenerator, gguf_lora, requantized
    from assistant.models import DEFAULT_MODEL, default_gguf_path, resolve_adapter_dir, resolve_model_dir

    base_dir = resolve_model_dir(settings)  # its tokenizer renders the prompts, as on the transformers path
    gguf_path = settings.gguf or (default_gguf_path() if settings.model == DEFAULT_MODEL else None)
    if gguf_path is None:
        raise ConfigError(f"ASSISTANT_GENERATOR=llama_cpp runs a GGUF file: set ASSISTANT_GGUF to the GGUF of "
                          f"{settings.model}")
    if settings.gguf_type != "as_is" and Path(gguf_path).is_file():  # a missing file is named by the generator
        gguf_path = requantized(gguf_path, settings.gguf_type, settings.data_dir / "gguf")
    adapter_dir = resolve_adapter_dir(settings, adapter)
    lora = gguf_lora(adapter_dir, base_dir, settings.data_dir / "gguf") if adapter_dir else None
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    return LlamaCppGenerator(
        gguf_path, base_dir, lora, model_id=base_dir.name, adapter_id=adapter_dir.name if adapter_dir else None,
        threads=settings.threads or max(1, cpu_threads() // cpu_slots(settings)),
        context_tokens=min(4096, int(config.get("max_position_embeddings", 2048))),
        max_new_tokens=settings.max_new_tokens, timeout_s=settings.generation_timeout_s,
        temperature=settings.temperature, repetition_penalty=settings.repetition_penalty)


def chunking(settings: Settings) -> ChunkingConfig:
    """Chunk sizes for new indexes, from the settings."""
    return ChunkingConfig(chunk_tokens=settings.chunk_tokens, overlap_tokens=settings.chunk_overlap_tokens)


def open_generator(settings: Settings, adapter: str | None = None) -> Generator:
    """The configured generator: the local transformers model with its adapter, or a remote server."""
    from assistant.generation import TransformersGenerator
    from assistant.models import resolve_adapter_dir, resolve_model_dir

    if settings.generator == "remote":
        from assistant.remote_generation import RemoteGenerator

        model = settings.remote_model if adapter in (None, "production") else adapter
        return RemoteGenerator(settings.remote_url or "", model or "", api_key=settings.remote_api_key,
                               max_new_tokens=settings.max_new_tokens, timeout_s=settings.generation_timeout_s,
                               temperature=settings.temperature)

    if settings.generator == "llama_cpp":
        return open_llama_cpp(settings, adapter)
    return TransformersGenerator(
        resolve_model_dir(settings),
        resolve_adapter_dir(settings, adapter),
        device=settings.device,
        threads=settings.threads,
        max_new_tokens=settings.max_new_tokens,
        timeout_s=settings.generation_timeout_s,
        temperature=settings.temperature,
        repetition_penalty=settings.repetition_penalty,
    )


def build_dialogue_manager(
    settings: Settings,
    *,
    generator: Generator | None = None,
    retriever: Retriever | None = None,
    store: Store | None = None,
    adapter: str | None = None,
) -> DialogueManager:
    """A ready DialogueManager; any part passed in (e.g. a scripted generator in tests) is used as is."""
    store = store or Store.open(settings.store_url)
    retriever = retriever or open_retriever(settings)
    generator = generator or open_generator(settings, adapter)
    return DialogueManager(settings=settings, retriever=retriever, generator=generator, store=store,
                           classifier=open_classifier(settings))
