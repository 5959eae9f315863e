"""`assistant eval logs|compare|gate` and `assistant report`: how the assistant does, and whether a model is better."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from assistant.cli import IndexOption, _print_json, _settings, app, eval_app

SinceOption = Annotated[str | None, typer.Option(
    help="Conversations started on or after this ISO date or date-time (UTC unless offset).")]
UntilOption = Annotated[str | None, typer.Option(
    help="Conversations started before this date-time, or up to the end of this date.")]
ChannelOption = Annotated[str | None, typer.Option(
    help="Channels, comma-separated: web, api, cli, eval (default: all but eval).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on the last line.")]
TestsetOption = Annotated[Path | None, typer.Option(help="Test set JSONL (default: the demo test set).")]
LimitOption = Annotated[int | None, typer.Option(min=1, help="Only the first N items.")]
GateFileOption = Annotated[Path | None, typer.Option(
    "--config", help="Gate file (TOML, a [tolerances] table); default: ASSISTANT_GATE_CONFIG, else built-in.")]


def _shown(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-" if value is None else str(value)


@eval_app.command("logs")
def eval_logs(since: SinceOption = None, until: UntilOption = None, channel: ChannelOption = None,
              index: IndexOption = None, as_json: JsonOption = False) -> None:
    """Resolution, containment, escalations, feedback, latency and knowledge gaps from the conversation log."""
    from assistant.bootstrap import open_retriever
    from assistant.evaluation.report import period_figures
    from assistant.periods import parse_period
    from assistant.store import Store

    period = parse_period(since, until, channel)  # bad dates fail before anything loads
    settings = _settings(index=index)
    store = Store.open(settings.store_url)
    _, figures = period_figures(store, period, open_retriever(settings))
    if as_json:
        _print_json({key: value for key, value in figures.items() if key != "daily"})
        return
    typer.echo(f"conversation log, {period.describe()}")
    for key, value in figures.items():
        if key not in ("escalation_reasons", "knowledge_gaps", "feedback", "daily"):
            typer.echo(f"{key:>20}: {_shown(value)}")
    reasons = ", ".join(f"{code} {count}" for code, count in figures["escalation_reasons"].items()) or "none"
    typer.echo(f"{'escalation_reasons':>20}: {reasons}")
    typer.echo("knowledge gaps (questions declined or disliked, by topic):" if figures["knowledge_gaps"]
               else "knowledge gaps: none in this period")
    for gap in figures["knowledge_gaps"]:
        closest = gap["closest_article"]
        typer.echo(f"  {gap['count']:>4}  {gap['topic']}  (closest: {closest['title'] if closest else '-'})")
        for example in gap["examples"]:
            typer.echo(f"        - {example}")


def _print_deltas(result: dict[str, Any]) -> None:
    typer.echo(f"{result['a']} (A) vs {result['b']} (B), {result['n']} items; delta = B - A, 95% bootstrap interval")
    typer.echo(f"  {'metric':>16} {'A':>7} {'B':>7} {'delta':>7}  {'interval':>18}  better")
    for name, d in result["deltas"].items():
        interval = f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d["ci95"] else "-"
        typer.echo(f"  {name:>16} {_shown(d['a']):>7} {_shown(d['b']):>7} {_shown(d['delta']):>7}  {interval:>18}  "
                   f"{d['better'] or '-'}")
    if result["differing"]:
        typer.echo("items where they differ most:")
    for item in result["differing"][:5]:
        typer.echo(f"  {item['id']}: {item['question']}")
        typer.echo(f"    A [{item['a']['decision']}] {item['a']['answer'][:160]}")
        typer.echo(f"    B [{item['b']['decision']}] {item['b']['answer'][:160]}")


@eval_app.command("compare")
def eval_compare(
    a: Annotated[str, typer.Option("--a", help="Model A: an adapter name or path, `base` or `production`.")],
    b: Annotated[str, typer.Option("--b", help="Model B, compared against A.")],
    testset: TestsetOption = None,
    index: IndexOption = None,
    limit: LimitOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    as_json: JsonOption = False,
    out: Annotated[Path | None, typer.Option(
        help="Write one JSONL record per item here: {\"id\", \"a\": A's record, \"b\": B's record}.")] = None,
) -> None:
    """Both models on the same items: per-metric deltas with paired bootstrap 95% intervals."""
    from assistant.evaluation.model_runs import run_compare

    result, (run_a, run_b) = run_compare(_settings(index=index), a, b, testset=testset, limit=limit, seed=seed)
    if out:
        from assistant.files import write_atomic

        write_atomic(out, "".join(json.dumps({"id": ra["id"], "a": ra, "b": rb}, ensure_ascii=False, default=str) + "\n"
                                  for ra, rb in zip(run_a.records, run_b.records, strict=True)))
    if as_json:
        _print_json(result)
    else:
        _print_deltas(result)


def print_gate(result: dict[str, Any]) -> None:
    """The gate's verdict, one line per checked metric."""
    verdict = "PASSED" if result["passed"] else "FAILED"
    typer.echo(f"gate {verdict}: {result['candidate']} against {result['baseline']} on {result['n']} items")
    for check in result["checks"]:
        typer.echo(f"  {'ok  ' if check['passed'] else 'FAIL'} {check['metric']:>16}: {check['why']}")


@eval_app.command("gate")
def eval_gate(
    candidate: Annotated[str, typer.Option(help="The model to release: an adapter name or path, or `base`.")],
    baseline: Annotated[str, typer.Option(help="What it must not be worse than.")] = "production",
    config: GateFileOption = None,
    testset: TestsetOption = None,
    index: IndexOption = None,
    limit: LimitOption = None,
    as_json: JsonOption = False,
) -> None:
    """Exit 1 when the candidate is worse than the baseline beyond the configured tolerances (and say why)."""
    from assistant.evaluation.gate import GateConfig
    from assistant.evaluation.model_runs import run_gate

    settings = _settings(index=index)
    gate_config = GateConfig.load(config or settings.gate_config)  # a bad gate file fails before any model loads
    result = run_gate(settings, candidate, baseline, config=gate_config, testset=testset, limit=limit)
    if as_json:
        _print_json(result)
    else:
        print_gate(result)
    if not result["passed"]:
        raise typer.Exit(1)


@app.command()
def report(
    out: Annotated[Path | None, typer.Option(help="Folder for report.html and the PNGs (default: <data dir>/reports).")]
    = None,
    since: SinceOption = None, until: UntilOption = None, channel: ChannelOption = None, index: IndexOption = None,
) -> None:
    """Write a self-contained report.html with plots of the conversation log and the latest compare/gate results."""
    from assistant.bootstrap import open_retriever
    from assistant.evaluation.report import write_report
    from assistant.periods import parse_period

    period = parse_period(since, until, channel)
    settings = _settings(index=index)
    path = write_report(settings, period, out, retriever=open_retriever(settings))
    typer.echo(f"report written to {path}")
