"""The HTTP API (FastAPI). The chat UI is mounted on this app by `assistant serve`, never imported here."""

from __future__ import annotations

from fastapi import FastAPI

from assistant.dialogue import DialogueManager


def create_api(manager: DialogueManager) -> FastAPI:
    """The API app: `/healthz` now; the OpenAI-compatible `/v1/*` routes build on it."""
    api = FastAPI(title="support-assistant", docs_url="/api/docs", openapi_url="/api/openapi.json")

    @api.get("/healthz")
    def healthz() -> dict[str, object]:
        """Liveness and what is loaded: model, adapter and index size."""
        return {
            "status": "ok",
            "model": manager.generator.model_id,
            "adapter": manager.generator.adapter_id,
            "index_documents": manager.retriever.index.document_count,
        }

    return api
