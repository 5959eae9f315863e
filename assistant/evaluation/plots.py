"""The report's plots, as matplotlib figures (the report saves them as PNG; the console shows them).

Figures are built with `matplotlib.figure.Figure`, not pyplot, so that server threads can draw at the
same time. A plot with nothing to show says "no data yet" instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from assistant.evaluation.logs import Activity

SIZE = (7.0, 3.2)
BLUE, GREEN, RED, GREY = "#2563eb", "#16a34a", "#dc2626", "#6b7280"


def _figure(title: str) -> tuple[Figure, Any]:
    figure = Figure(figsize=SIZE, dpi=100, layout="constrained")
    axes = figure.subplots()
    axes.set_title(title, fontsize=11, loc="left")
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _no_data(figure: Figure, axes: Any) -> Figure:
    axes.set_axis_off()
    axes.text(0.5, 0.45, "no data yet", ha="center", va="center", fontsize=14, color=GREY,
              transform=axes.transAxes)
    return figure


def _days(axes: Any, daily: Sequence[dict[str, Any]]) -> list[int]:
    """One slot per day with data, at most 12 labelled, and room for a week so that one day is not one wide bar."""
    labels = [date.fromisoformat(row["day"]).strftime("%b %d") for row in daily]
    step = max(1, -(-len(labels) // 12))
    axes.set_xticks(range(0, len(labels), step), labels[::step])
    axes.set_xlim(-0.6, max(len(labels), 7) - 0.4)
    return list(range(len(labels)))


def _rows(axes: Any, count: int) -> None:
    """Room for at least four bars, so that one reason is not one wide block."""
    axes.set_ylim(-0.6, max(count, 4) - 0.4)


def _counts(axis: Any) -> None:
    axis.set_major_locator(MaxNLocator(integer=True))


def turns_per_day(daily: Sequence[dict[str, Any]]) -> Figure:
    """Customer turns per day (by the day the conversation started)."""
    figure, axes = _figure("Turns per day")
    if not daily:
        return _no_data(figure, axes)
    axes.bar(_days(axes, daily), [row["turns"] for row in daily], color=BLUE, width=0.6)
    axes.set_ylabel("turns")
    _counts(axes.yaxis)
    return figure


def outcomes_over_time(daily: Sequence[dict[str, Any]]) -> Figure:
    """Resolution and escalation rates per day."""
    figure, axes = _figure("Resolution and escalation over time")
    if not daily:
        return _no_data(figure, axes)
    days = _days(axes, daily)
    axes.plot(days, [row["resolution_rate"] for row in daily], marker="o", color=GREEN, label="resolved")
    axes.plot(days, [row["escalation_rate"] for row in daily], marker="o", color=RED, label="escalated")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("share of conversations")
    axes.legend(frameon=False, loc="upper left", fontsize=8, ncols=2)
    return figure


def escalation_reasons(reasons: dict[str, int]) -> Figure:
    """Handoffs by reason code."""
    figure, axes = _figure("Escalation reasons")
    if not reasons:
        return _no_data(figure, axes)
    names = list(reasons)[::-1]
    axes.barh(names, [reasons[name] for name in names], color=RED, height=0.6)
    _rows(axes, len(names))
    axes.set_xlabel("conversations")
    _counts(axes.xaxis)
    return figure


def latency_histogram(activity: Activity) -> Figure:
    """Seconds to the first shown text and to the whole reply, over bot replies."""
    figure, axes = _figure("Reply latency")
    replies = activity.replies
    first = [m.first_token_s for m in replies if m.first_token_s is not None]
    total = [m.total_s for m in replies if m.total_s is not None]
    if not total:
        return _no_data(figure, axes)
    top = max(total)
    bins = [top * i / 20 for i in range(21)] if top > 0 else 10
    if first:
        axes.hist(first, bins=bins, color=BLUE, alpha=0.6, label="first text")
    axes.hist(total, bins=bins, color=GREY, alpha=0.6, label="whole reply")
    axes.set_xlabel("seconds")
    axes.set_ylabel("replies")
    _counts(axes.yaxis)
    axes.legend(frameon=False, fontsize=8)
    return figure


def feedback_per_day(daily: Sequence[dict[str, Any]]) -> Figure:
    """Thumbs up and down per day."""
    figure, axes = _figure("Feedback")
    if not any(row["thumbs_up"] or row["thumbs_down"] for row in daily):
        return _no_data(figure, axes)
    days = _days(axes, daily)
    up = [row["thumbs_up"] for row in daily]
    axes.bar(days, up, color=GREEN, label="thumbs up", width=0.6)
    axes.bar(days, [row["thumbs_down"] for row in daily], bottom=up, color=RED, label="thumbs down", width=0.6)
    axes.set_ylabel("ratings")
    axes.legend(frameon=False, fontsize=8)
    _counts(axes.yaxis)
    return figure


def knowledge_gap_clusters(gaps: Sequence[dict[str, Any]]) -> Figure:
    """Declined or disliked questions per topic, largest first."""
    figure, axes = _figure("Knowledge gaps (questions per topic)")
    if not gaps:
        return _no_data(figure, axes)
    shown = list(gaps[:10])[::-1]
    axes.barh([gap["topic"][:40] for gap in shown], [gap["count"] for gap in shown], color=BLUE, height=0.6)
    _rows(axes, len(shown))
    axes.set_xlabel("questions")
    _counts(axes.xaxis)
    return figure


def all_plots(activity: Activity, figures: dict[str, Any]) -> dict[str, Figure]:
    """Every plot of the report, by file stem."""
    return {
        "turns_per_day": turns_per_day(figures["daily"]),
        "outcomes_over_time": outcomes_over_time(figures["daily"]),
        "escalation_reasons": escalation_reasons(figures["escalation_reasons"]),
        "latency": latency_histogram(activity),
        "feedback": feedback_per_day(figures["daily"]),
        "knowledge_gaps": knowledge_gap_clusters(figures.get("knowledge_gaps") or []),
    }
