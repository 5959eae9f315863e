"""The console's Metrics and Models views, served for real on 127.0.0.1 and driven through gradio_client."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.test_chat_server import serve


@pytest.fixture
def console(make_manager, settings, tiny_model_dir: Path, tmp_path: Path):
    """A server with an agent key whose base is the tiny model, an adapter for it in the data dir, and a gate
    that checks quality only (the latency of a tiny model is noise)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(settings.data_dir / "adapters" / "tiny-lora")
    gate_file = tmp_path / "gate.toml"
    gate_file.write_text("[tolerances]\nanswer_rate = 1.0\n", encoding="utf-8")
    configured = settings.model_copy(update={"agent_keys": ["k-agent"], "api_keys": ["k-api"], "max_new_tokens": 8,
                                             "model": str(tiny_model_dir), "gate_config": gate_file})
    yield from serve(make_manager, configured)


def test_metrics_view_shows_the_log_figures_plots_and_gaps(console):
    from gradio_client import Client

    url, manager = console
    customer = Client(url, verbose=False)
    customer.predict("How do I reset my password?", [], api_name="/chat")
    customer.predict("Do you support Google Home?", [], api_name="/chat")
    agent = Client(url + "agent/", auth=("ana", "k-agent"), verbose=False)
    caption, figures, gaps, *plots = agent.predict("All time", "", "", ["web", "api", "cli"], api_name="/metrics")
    shown = {row[0]: row[1] for row in figures["data"]}
    assert shown["conversations"] == 1 and shown["turns"] == 2 and "channels web, api, cli" in caption
    assert gaps["data"][0][4] == "Do you support Google Home?" and gaps["data"][0][1] == 1
    assert len(plots) == 6
    nothing = agent.predict("All time", "2031-01-01", "", ["web"], api_name="/metrics")
    assert {row[0]: row[1] for row in nothing[1]["data"]}["conversations"] == 0
    with pytest.raises(Exception, match="'someday' is not a date"):
        agent.predict("All time", "someday", "", ["web"], api_name="/metrics")


def test_models_view_promotes_through_the_gate_and_switches_without_a_restart(console):
    from gradio_client import Client

    url, manager = console
    agent = Client(url + "agent/", auth=("ana", "k-agent"), verbose=False)
    rows = {row[0]: row for row in agent.predict(api_name="/adapters")["data"]}
    assert {"shipped", "tiny-lora", "base"} <= set(rows)
    assert rows["base"][1] == "●" and rows["base"][2] == "●"  # served and production: nothing promoted for this base
    assert '"name": "shipped_adapter"' in agent.predict("shipped", api_name="/adapter_card")
    verdict, table = agent.predict("tiny-lora", 2, api_name="/promote")
    assert verdict.startswith("Gate passed: tiny-lora against production (base) on 2 test items.")
    assert "the server now answers with **tiny-lora**" in verdict
    assert manager.generator.adapter_id == "tiny-lora"
    rows = {row[0]: row for row in table["data"]}
    assert rows["tiny-lora"][1] == "●" and rows["tiny-lora"][2] == "●" and rows["base"][1] == ""
    reply = Client(url, verbose=False).predict("How do I reset my password?", [], api_name="/chat")
    assert reply is not None
    assert manager.store.messages(manager.store.conversations(1)[0].id)[-1].adapter_id == "tiny-lora"
