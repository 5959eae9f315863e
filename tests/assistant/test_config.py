from pathlib import Path

import pytest

from assistant.config import load_settings, mask_url
from assistant.errors import ConfigError


def test_env_toml_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "assistant.toml"
    config.write_text('company_name = "Acme"\nretrieval_k = 4\nmax_new_tokens = 50\n', encoding="utf-8")
    monkeypatch.setenv("ASSISTANT_CONFIG", str(config))
    monkeypatch.setenv("ASSISTANT_MAX_NEW_TOKENS", "77")
    monkeypatch.setenv("ASSISTANT_API_KEYS", "key-one, key-two")
    settings = load_settings(retrieval_k=2)
    assert settings.company_name == "Acme"  # from the file
    assert settings.max_new_tokens == 77  # the environment wins over the file
    assert settings.retrieval_k == 2  # explicit overrides win over both
    assert settings.api_keys == ["key-one", "key-two"]
    assert settings.masked()["api_keys"] == ["ke…", "ke…"]


def test_default_store_and_artifact_paths(isolated_env: Path):
    settings = load_settings()
    assert settings.store_url == f"sqlite:///{isolated_env / 'assistant.db'}"
    assert settings.artifact_path("index", "default") == isolated_env / "indexes" / "default"
    assert settings.artifact_path("model", "./m") == Path("m").resolve()


def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ASSISTANT_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="ASSISTANT_PORT"):
        load_settings()


def test_database_password_is_masked():
    assert mask_url("postgresql+psycopg://bob:s3cret@db:5432/x") == "postgresql+psycopg://bob:***@db:5432/x"


@pytest.mark.parametrize("variable", ["ASSISTANT_API_KEYS", "ASSISTANT_AGENT_KEYS"])
@pytest.mark.parametrize("value", ['[""]', '["   "]', '["good-key", "\\t"]'])
def test_empty_keys_are_refused_at_start(monkeypatch: pytest.MonkeyPatch, variable: str, value: str):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"{variable}: .*empty or only whitespace"):
        load_settings()


def test_empty_keys_are_refused_from_the_file_and_from_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "keys.toml"
    config.write_text('agent_keys = [""]\n', encoding="utf-8")
    monkeypatch.setenv("ASSISTANT_CONFIG", str(config))
    with pytest.raises(ConfigError, match="ASSISTANT_AGENT_KEYS"):
        load_settings()
    monkeypatch.delenv("ASSISTANT_CONFIG")
    with pytest.raises(ConfigError, match="ASSISTANT_API_KEYS"):
        load_settings(api_keys=[" "])
    assert load_settings(api_keys="a, ,b").api_keys == ["a", "b"]  # blanks between commas are separators
