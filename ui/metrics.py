"""The console's Metrics view: the `eval logs` figures and the report's plots over a chosen period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import gradio as gr

from assistant.errors import AssistantError
from assistant.evaluation.plots import all_plots
from assistant.evaluation.report import HEADLINE, period_figures
from assistant.periods import CHANNELS, CUSTOMER_CHANNELS, Period, parse_moment
from assistant.store import Store

PERIODS = {"Last 24 hours": timedelta(days=1), "Last 7 days": timedelta(days=7), "Last 30 days": timedelta(days=30),
           "All time": None}
GAP_COLUMNS = ["topic", "asked", "declined", "disliked", "examples", "closest article"]
PLOT_TITLES = ["turns_per_day", "outcomes_over_time", "escalation_reasons", "latency", "feedback", "knowledge_gaps"]


def chosen_period(preset: str, since: str, until: str, channels: list[str]) -> Period:
    """The period the view's controls describe: since/until when given, else the preset."""
    if not channels:
        raise AssistantError("choose at least one channel")
    start = parse_moment(since, "since")
    end = parse_moment(until, "until", end_of_day=True)
    if start is None and PERIODS.get(preset) is not None:
        start = datetime.now(UTC) - PERIODS[preset]
    return Period(start, end, tuple(channels))


def metrics_view(store: Store, retriever: Any) -> None:
    """Build the Metrics tab's components inside the current Blocks (agent keys only, like the whole console)."""

    def update(preset: str, since: str, until: str, channels: list[str]) -> list[Any]:
        try:
            period = chosen_period(preset, since, until, channels)
        except AssistantError as err:
            raise gr.Error(str(err)) from err
        activity, figures = period_figures(store, period, retriever)
        reasons = ", ".join(f"{code} {count}" for code, count in figures["escalation_reasons"].items()) or "none"
        table = [[key, "—" if figures[key] is None else round(figures[key], 3)] for key in HEADLINE]
        table.append(["escalation reasons", reasons])
        gaps = [[g["topic"], g["count"], g["declined"], g["thumbs_down"], " · ".join(g["examples"]),
                 g["closest_article"]["title"] if g["closest_article"] else "—"] for g in figures["knowledge_gaps"]]
        plots = all_plots(activity, figures)
        return [f"Conversations from {period.describe()}.", table, gaps or [["no data yet", 0, 0, 0, "", ""]],
                *(plots[name] for name in PLOT_TITLES)]

    with gr.Row():
        preset = gr.Dropdown(list(PERIODS), value="Last 7 days", label="Period", scale=2)
        since = gr.Textbox(label="Since (YYYY-MM-DD, optional)", scale=2)
        until = gr.Textbox(label="Until (YYYY-MM-DD, optional)", scale=2)
        channels = gr.CheckboxGroup(list(CHANNELS), value=list(CUSTOMER_CHANNELS), label="Channels", scale=3)
        refresh = gr.Button("Update", variant="primary", scale=1)
    caption = gr.Markdown()
    with gr.Row():
        figures = gr.Dataframe(headers=["figure", "value"], interactive=False, label="Figures", scale=1)
        gaps = gr.Dataframe(headers=GAP_COLUMNS, interactive=False, wrap=True, label="Knowledge gaps", scale=2,
                            column_widths=["18%", "10%", "10%", "10%", "30%", "22%"])
    plots = []
    for row in range(0, len(PLOT_TITLES), 2):
        with gr.Row():
            plots += [gr.Plot(label=name.replace("_", " "), show_label=False, format="png")
                      for name in PLOT_TITLES[row:row + 2]]
    outputs = [caption, figures, gaps, *plots]
    refresh.click(update, [preset, since, until, channels], outputs, api_name="metrics")
