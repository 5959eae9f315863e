"""The console's Models view: adapters with their cards and evaluations, the live one, promotion through the gate."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from assistant.errors import AssistantError
from assistant.model_desk import SHOWN_METRICS, ModelDesk

COLUMNS = ["adapter", "live", "prod", "base", "created", "dev loss", "train rows", "answer rate", "abstain",
           "grounded", "fact recall", "wrong facts", "p95 (s)"]
"""Short headers: a table column is narrow, and Gradio breaks a long word anywhere."""
WIDTHS = ["10%", "5%", "8%", "13%", "12%", "7%", "7%", "7%", "7%", "7%", "6%", "6%", "5%"]


def gate_markdown(result: dict[str, Any]) -> str:
    """The gate's verdict as the agent reads it."""
    verdict = "passed" if result["passed"] else "**failed**"
    lines = [f"Gate {verdict}: {result['candidate']} against {result['baseline']} ({result['baseline_adapter']}) "
             f"on {result['n']} test items."]
    lines += [f"- {'✔' if c['passed'] else '✘'} {c['metric']}: {c['why']}" for c in result["checks"]]
    if result.get("promoted"):
        lines.append(f"\nPromoted: the server now answers with **{result.get('live')}**.")
    elif not result["passed"]:
        lines.append("\nNot promoted: production is unchanged.")
    return "\n".join(lines)


def models_view(desk: ModelDesk) -> None:
    """Build the Models tab's components inside the current Blocks."""

    def table() -> list[list[Any]]:
        return [[r["name"], "●" if r["live"] else "", "●" if r["production"] else "", r["base"] or "—",
                 (r["created_at"] or "—")[:16], r["dev_loss"] if r["dev_loss"] is not None else "—",
                 r["train_rows"] if r["train_rows"] is not None else "—",
                 *(round(r[k], 3) if isinstance(r[k], float) else "—" for k in SHOWN_METRICS)]
                for r in desk.adapters()]

    def names() -> gr.Dropdown:
        return gr.Dropdown(choices=[*desk.folders(), "base"])

    def card(name: str) -> str:
        if not name:
            raise gr.Error("choose an adapter first")
        return json.dumps(desk.card(name), indent=1, ensure_ascii=False, default=str)

    def promote(name: str, limit: float | None,
                progress: gr.Progress = gr.Progress()) -> tuple[str, list[list[Any]]]:  # noqa: B008 (how Gradio asks)
        if not name:
            raise gr.Error("choose an adapter to promote")
        progress(0, desc=f"running the release gate: {name} against production")
        try:
            result = desk.promote(name, limit=int(limit) if limit else None)
        except AssistantError as err:
            raise gr.Error(str(err)) from err
        return gate_markdown(result), table()

    gr.Markdown("Adapters this server can answer with. **Promote** runs the release gate (the candidate against "
                "production on the test set); only a candidate that passes becomes production, served from the next "
                "turn on, without a restart. Figures are each adapter's latest evaluation on the test set.")
    adapters = gr.Dataframe(headers=COLUMNS, value=table, interactive=False, wrap=True, column_widths=WIDTHS)
    with gr.Row():
        chosen = gr.Dropdown(choices=[*desk.folders(), "base"], label="Adapter", scale=3)
        limit = gr.Number(label="Gate on the first N test items (0: all)", value=0, precision=0, minimum=0, scale=2)
        show = gr.Button("Show card", scale=1)
        promote_button = gr.Button("Promote (runs the gate)", variant="primary", scale=1)
        reload = gr.Button("Refresh", scale=1)
    verdict = gr.Markdown()
    details = gr.Code(language="json", label="Card and latest evaluation")
    show.click(card, chosen, details, api_name="adapter_card")
    promote_button.click(promote, [chosen, limit], [verdict, adapters], api_name="promote")
    reload.click(table, None, adapters, api_name="adapters").then(names, None, chosen)
