"""`assistant report`: one self-contained `report.html` (plots embedded) with each plot also as a PNG beside it.

The page holds the period's headline figures, the plots of `assistant/evaluation/plots.py`, the
knowledge-gap list, and the latest `eval compare` and `eval gate` results saved in `reports/`.
An empty store gives a report whose figures are "—" and whose plots say "no data yet".
"""

from __future__ import annotations

import base64
import html
import io
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.evaluation.gaps import knowledge_gaps
from assistant.evaluation.logs import Activity, load_activity, log_figures
from assistant.evaluation.model_runs import latest_result, reports_dir
from assistant.evaluation.plots import all_plots
from assistant.files import write_atomic
from assistant.periods import Period
from assistant.store import Store

log = logging.getLogger(__name__)
HEADLINE = ("conversations", "turns", "resolution_rate", "containment_rate", "escalation_rate", "thumbs_up_rate",
            "thumbs_down_rate", "first_token_p50_s", "first_token_p95_s", "total_p50_s", "total_p95_s")


class ReportError(AssistantError):
    """A report that cannot be written where asked."""


def period_figures(store: Store, period: Period, retriever: Any | None) -> tuple[Activity, dict[str, Any]]:
    """The period's activity and its `eval logs` figures, knowledge gaps included when a retriever is given."""
    activity = load_activity(store, period)
    figures = log_figures(activity)
    gaps = knowledge_gaps(activity, retriever) if retriever is not None else []
    # knowledge_gaps is a headline key: it goes before the nested breakdowns
    ordered = {key: value for key, value in figures.items() if key not in ("feedback", "daily")}
    return activity, {**ordered, "knowledge_gaps": gaps, "feedback": figures["feedback"], "daily": figures["daily"]}


def png(figure: Any) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_report(settings: Settings, period: Period, out: Path | None = None, retriever: Any | None = None,
                 store: Store | None = None) -> Path:
    """Write `report.html` and one PNG per plot into `out` (default `<data dir>/reports`); returns the page."""
    out = Path(out) if out else reports_dir(settings)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ReportError(f"cannot write the report to {out} ({err.strerror or err}): choose another folder with "
                          "--out, or set ASSISTANT_DATA_DIR to a folder this process can write") from err
    activity, figures = period_figures(store or Store.open(settings.store_url), period, retriever)
    images = {}
    for name, figure in all_plots(activity, figures).items():
        images[name] = png(figure)
        write_atomic(out / f"{name}.png", images[name])
    page = render_html(settings, period, figures, images, latest_result(settings, "latest-compare"),
                       latest_result(settings, "latest-gate"))
    path = write_atomic(out / "report.html", page)
    log.info("report written to %s (%d plots)", path, len(images))
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _gaps_section(gaps: list[dict[str, Any]]) -> str:
    if not gaps:
        return "<p class='empty'>No declined or disliked questions in this period: no data yet.</p>"
    rows = [[gap["topic"], gap["count"], gap["declined"], gap["thumbs_down"], " · ".join(gap["examples"]),
             (f"{gap['closest_article']['title']} ({gap['closest_article']['doc_id']}, confidence "
              f"{gap['closest_article']['confidence']:.2f})") if gap["closest_article"] else None] for gap in gaps]
    return _table(["topic", "questions", "declined", "thumbs down", "examples", "closest article"], rows)


def _compare_section(compare: dict[str, Any] | None) -> str:
    if not compare:
        return "<p class='empty'>No comparison yet: run <code>assistant eval compare --a NAME --b NAME</code>.</p>"
    rows = [[name, d["a"], d["b"], d["delta"], f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d["ci95"] else None,
             d["better"] or "no clear difference", d["n"]] for name, d in compare["deltas"].items()]
    intro = (f"<p>{html.escape(compare['a'])} (A) against {html.escape(compare['b'])} (B) on {compare['n']} items of "
             f"{html.escape(compare.get('testset', ''))}, {html.escape(compare.get('created_at', ''))}. Delta = B − A, "
             "95% paired bootstrap interval.</p>")
    return intro + _table(["metric", "A", "B", "delta", "95% interval", "better", "items"], rows)


def _gate_section(result: dict[str, Any] | None) -> str:
    if not result:
        return "<p class='empty'>No gate run yet: run <code>assistant eval gate --candidate NAME</code>.</p>"
    verdict = "<b class='pass'>passed</b>" if result["passed"] else "<b class='fail'>failed</b>"
    intro = (f"<p>Candidate {html.escape(result['candidate'])} against {html.escape(result['baseline'])} "
             f"({html.escape(result.get('created_at', ''))}): {verdict}.</p>")
    rows = [[c["metric"], c["baseline"], c["candidate"], c["tolerance"], "yes" if c["passed"] else "no", c["why"]]
            for c in result["checks"]]
    return intro + _table(["metric", "baseline", "candidate", "tolerance", "passed", "why"], rows)


CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#111}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}table{border-collapse:collapse;margin:.5rem 0;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;font-size:.9rem;vertical-align:top}
.figures td:nth-child(2){font-variant-numeric:tabular-nums}.plots{display:grid;
grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1rem}.plots img{width:100%;border:1px solid #eee}
.empty{color:#6b7280}.pass{color:#16a34a}.fail{color:#dc2626}"""


def render_html(settings: Settings, period: Period, figures: dict[str, Any], images: dict[str, bytes],
                compare: dict[str, Any] | None, gate: dict[str, Any] | None) -> str:
    """The report page, every plot embedded as a data URL (the page needs no other file)."""
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    headline = _table(["figure", "value"], [[key, figures[key]] for key in HEADLINE])
    reasons = figures["escalation_reasons"]
    reasons_text = ", ".join(f"{html.escape(k)} {v}" for k, v in reasons.items()) or "none"
    plots = "".join(f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,"
                    f"{base64.b64encode(data).decode()}'></figure>" for name, data in images.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(settings.company_name)} support report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>
<h1>{html.escape(settings.company_name)} support assistant: report</h1>
<p>Conversations from {html.escape(period.describe())}. Made {created}.</p>
<h2>Figures</h2><div class="figures">{headline}</div><p>Escalation reasons: {reasons_text}.</p>
<h2>Plots</h2><div class="plots">{plots}</div>
<h2>Knowledge gaps</h2><p>Questions the assistant declined or that got a thumbs-down, grouped by topic, with the
closest article: write or fix the article for the largest groups first.</p>{_gaps_section(figures['knowledge_gaps'])}
<h2>Latest model comparison</h2>{_compare_section(compare)}
<h2>Latest release gate</h2>{_gate_section(gate)}
</body></html>
"""
