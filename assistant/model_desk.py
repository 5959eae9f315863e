"""The console's Models view: adapters with their cards and latest evaluations, which one is live,
promotion through the release gate, and switching the served model without a restart."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.dialogue import DialogueManager
from assistant.errors import ConfigError
from assistant.evaluation.gate import GateConfig
from assistant.evaluation.model_runs import latest_result, resolved_adapter, run_gate
from assistant.models import SHIPPED_ADAPTER, promote_adapter

log = logging.getLogger(__name__)
SHOWN_METRICS = ("answer_rate", "abstention", "groundedness", "fact_recall", "wrong_fact_rate", "latency_p95_s")


def read_card(folder: Path) -> dict[str, Any]:
    """An adapter's card.json ({} when it has none or it cannot be read)."""
    try:
        return json.loads((folder / "card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class ModelDesk:
    """Adapters the server can serve, and the one it serves now (`manager.generator`)."""

    def __init__(self, settings: Settings, manager: DialogueManager) -> None:
        self.settings = settings
        self.manager = manager
        self._promoting = threading.Lock()

    def folders(self) -> dict[str, Path]:
        """Adapter name -> folder: the shipped adapter and every adapter in the data dir."""
        found = {"shipped": SHIPPED_ADAPTER} if (SHIPPED_ADAPTER / "adapter_config.json").is_file() else {}
        root = self.settings.data_dir / "adapters"
        if root.is_dir():
            found |= {p.name: p for p in sorted(root.iterdir()) if (p / "adapter_config.json").is_file()}
        return found

    def live(self) -> str:
        """The adapter the server answers with now (`base` for none)."""
        return self.manager.generator.adapter_id or "base"

    def production(self) -> str:
        """The adapter `production` stands for now."""
        try:
            return resolved_adapter(self.settings, "production")
        except ConfigError:
            return "missing"

    def adapters(self) -> list[dict[str, Any]]:
        """One row per adapter (and `base`): card facts, latest evaluation figures, live and production flags."""
        live, production = self.live(), self.production()
        rows = []
        for name, folder in [*self.folders().items(), ("base", None)]:
            card = read_card(folder) if folder else {}
            evaluation = (latest_result(self.settings, f"evaluations/{name}") or {}).get("summary") or {}
            metrics = card.get("metrics") or {}
            rows.append({
                "name": name, "live": name == live, "production": name == production,
                "base": (card.get("base") or {}).get("path") or (self.settings.model if folder is None else None),
                "created_at": card.get("created_at"), "dev_loss": metrics.get("dev_loss"),
                "train_rows": next((d.get("rows") for d in card.get("data", []) if d.get("role") == "train"), None),
                **{key: evaluation.get(key) for key in SHOWN_METRICS},
            })
        return rows

    def card(self, name: str) -> dict[str, Any]:
        """The full card of an adapter, with its latest evaluation."""
        folder = self.folders().get(name)
        return {"card": read_card(folder) if folder else {"name": "base", "kind": "model"},
                "latest_evaluation": latest_result(self.settings, f"evaluations/{name}")}

    def promote(self, name: str, *, config: GateConfig | None = None, limit: int | None = None) -> dict[str, Any]:
        """Gate `name` against production; when it passes, promote it and serve it from the next turn on."""
        if not self._promoting.acquire(blocking=False):
            raise ConfigError("a promotion is already running: wait for its gate to finish")
        try:
            config = config or GateConfig.load(self.settings.gate_config)
            result = run_gate(self.settings, name, "production", config=config, limit=limit, progress=False)
            result["promoted"] = False
            if result["passed"]:
                promote_adapter(self.settings, name)
                result["promoted"] = True
                result["live"] = self.switch("production")
            return result
        finally:
            self._promoting.release()

    def switch(self, name: str) -> str:
        """Serve `name` from the next turn on (turns already running finish with the model they started with)."""
        from assistant.bootstrap import open_generator

        if self.settings.adapter not in ("production", name):
            log.warning("this server was started with --adapter %s; switching it to %s", self.settings.adapter, name)
        from assistant.generation_worker import GenerationWorker

        generator = open_generator(self.settings, name)
        current = self.manager.generator
        self.manager.generator = current.serving(generator) if isinstance(current, GenerationWorker) else generator
        log.info("now serving adapter %s", self.live())
        return self.live()
