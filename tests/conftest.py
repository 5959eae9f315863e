"""Shared fixtures: an isolated data dir per test, tiny models, demo data, services."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from knowledge.demo_data import ARTICLES_DIR
from tests.helpers import make_tiny_model, unavailable

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data dir and no config file or keys from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("ASSISTANT_") and key != "ASSISTANT_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    return data_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = [p.read_text(encoding="utf-8") for p in sorted(ARTICLES_DIR.rglob("*.md"))]
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"), corpus)


@pytest.fixture(scope="session")
def hash_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo help center indexed with the hash embedder (no model needed)."""
    from knowledge.embedder import HashEmbedder
    from knowledge.index import KnowledgeIndex
    from knowledge.loaders import load_documents

    path = tmp_path_factory.mktemp("hash-index") / "demo"
    KnowledgeIndex.build(load_documents([ARTICLES_DIR]).documents, HashEmbedder(), name="demo").save(path)
    return path


@pytest.fixture
def settings(isolated_env: Path, hash_index_dir: Path):
    """Settings for fast tests: hash embedder (its similarities run low, so low abstain and evidence bars),
    demo index, SQLite."""
    from assistant.config import load_settings

    return load_settings(embedder="hash", index=str(hash_index_dir), abstain_below=0.01, min_evidence_score=-1.0)


@pytest.fixture
def make_manager(settings):
    """Build a DialogueManager over the demo hash index with a scripted generator."""
    from assistant.bootstrap import build_dialogue_manager
    from assistant.generation import ScriptedGenerator

    def make(reply="To reset your password, open the app and tap Forgot password?", **overrides):
        current = settings.model_copy(update=overrides) if overrides else settings
        return build_dialogue_manager(current, generator=ScriptedGenerator(reply))

    return make


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir for the end-to-end tests: the converted 135M model and the real demo index."""
    return tmp_path_factory.mktemp("real-data")


def postgres_url() -> str:
    return os.environ.get("ASSISTANT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose search_path is a schema of its own, dropped afterwards."""
    from sqlalchemy import create_engine, text

    base = postgres_url()
    try:
        engine = create_engine(base, connect_args={"connect_timeout": 3})
        with engine.begin() as conn:
            schema = f"test_{uuid.uuid4().hex[:10]}"
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as err:  # any connection failure means no server here
        unavailable(f"PostgreSQL at {base} ({type(err).__name__})")
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path: Path) -> str:
    """A fresh conversation store: a SQLite file, then a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def intent_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen-embedding classifier (refund, shipping, password, oos) fitted once on a tiny synthetic file."""
    from tests.helpers import write_intents
    from training.classifier import ClassifierConfig, train_classifier

    folder = tmp_path_factory.mktemp("intents")
    target = folder / "intents"
    train_classifier(write_intents(folder / "intents.jsonl"), target, ClassifierConfig(frozen=True))
    return target
