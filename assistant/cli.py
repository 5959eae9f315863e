"""The `assistant` command line. Heavy libraries load inside the commands that need them."""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from assistant.errors import AssistantError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Self-hosted customer-support assistant.")
kb_app = typer.Typer(no_args_is_help=True, help="Build, search and inspect knowledge indexes.")
db_app = typer.Typer(no_args_is_help=True, help="Manage the conversation store.")
app.add_typer(kb_app, name="kb")
eval_app = typer.Typer(no_args_is_help=True, help="Measure retrieval and answers on labelled test sets.")
app.add_typer(db_app, name="db")
app.add_typer(eval_app, name="eval")
train_app = typer.Typer(no_args_is_help=True,
                        help="Export training data, fine-tune adapters, pretrain, fit classifiers.")
app.add_typer(train_app, name="train")
log = logging.getLogger("assistant.cli")

IndexOption = Annotated[str | None, typer.Option("--index", help="Index name under the data dir, or a path.")]
SkipBadOption = Annotated[bool, typer.Option(
    "--skip-bad", help="Go on when a file fails to load; its documents keep the version already indexed.")]


def _settings(**overrides):
    from assistant.config import load_settings

    return load_settings(**overrides)


def _print_json(obj: object) -> None:
    """One JSON object on one line, the last line of stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


@app.command()
def config() -> None:
    """Print the effective configuration (keys and passwords masked)."""
    _print_json(_settings().masked())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the store's tables to the latest schema."""
    from assistant.config import mask_url
    from assistant.store import Store

    settings = _settings()
    revision = Store(settings.store_url).upgrade()
    typer.echo(f"store {mask_url(settings.store_url)} is at revision {revision}")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The customer's question.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    conversation: Annotated[str | None, typer.Option(help="Continue this conversation id.")] = None,
    adapter: Annotated[str | None, typer.Option(help="Adapter name, path or `base`.")] = None,
    index: IndexOption = None,
) -> None:
    """Answer one question from the terminal, with its sources; the turn is logged (channel cli)."""
    from assistant.bootstrap import build_dialogue_manager
    from assistant.dialogue import Token
    from assistant.dialogue.events import TurnView
    from assistant.guards import check_message

    settings = _settings(index=index)
    check_message(question, settings.max_message_chars)  # fail fast, before any model loads
    if conversation is not None:
        _check_conversation_option(conversation)
    manager = build_dialogue_manager(settings, adapter=adapter)
    view = TurnView()
    for event in manager.respond(conversation, question, channel="cli"):
        view.add(event)
        if isinstance(event, Token) and not as_json:  # only checked text is ever streamed
            sys.stdout.write(event.text)
            sys.stdout.flush()
    final = view.final
    assert final is not None  # respond always ends with Final
    if as_json:
        _print_json({
            "conversation_id": final.conversation_id, "message_id": final.message_id, "answer": final.text,
            "decision": final.decision, "reason": final.reason, "reason_detail": final.reason_detail,
            "citations": final.citations, "escalated": view.escalated, "ticket_id": view.ticket_id,
            "sources": [hit.to_dict() for hit in view.hits], "timings": final.timings,
            "check": {"groundedness_before": final.check.before, "groundedness": final.check.after,
                      "fallback": final.check.fallback, "removed": final.check.removed,
                      "evidence": final.check.evidence},
        })
        return
    sys.stdout.write("\n")
    if final.citations:
        sys.stdout.write("\nSources:\n")
        for cite in final.citations:
            sys.stdout.write(f"  [{cite['n']}] {cite['title']} ({cite['doc_id']}) {cite['source']}\n")


def _check_conversation_option(conversation: str) -> None:
    """`--conversation` must be an id the store can hold; the error names the option."""
    from assistant.errors import InvalidConversationId
    from assistant.store.tables import check_conversation_id

    try:
        check_conversation_id(conversation)
    except InvalidConversationId as err:
        raise InvalidConversationId(f"--conversation: {err}") from err


def _report_update(target: Path, index, report, loaded) -> None:
    typer.echo(f"{target}: {report.summary()}; now {index.document_count} documents, {len(index.chunks)} chunks")
    for path, reason in loaded.skipped:
        typer.echo(f"skipped {path}: {reason}", err=True)
    for path, reason in loaded.failed:
        typer.echo(f"not loaded {path}: {reason} (the indexed version, if any, was kept)", err=True)


@kb_app.command("build")
def kb_build(
    paths: Annotated[list[Path], typer.Argument(help="Folders of documents, document files or .jsonl files.")],
    index: IndexOption = None,
    embedder: Annotated[str | None, typer.Option(help="Embedder name or folder.")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-embed everything instead of refreshing.")] = False,
    chunk_tokens: Annotated[int | None, typer.Option(help="Largest chunk, in embedder tokens.")] = None,
    overlap_tokens: Annotated[int | None, typer.Option(help="Tokens shared by neighbouring chunks.")] = None,
    skip_bad: SkipBadOption = False,
) -> None:
    """Build an index, or refresh it: only new or changed documents are embedded, removed ones dropped."""
    from assistant.bootstrap import chunking, index_path
    from knowledge.embedder import load_embedder
    from knowledge.ingest import build_index

    settings = _settings(index=index, embedder=embedder, chunk_tokens=chunk_tokens,
                         chunk_overlap_tokens=overlap_tokens)
    target = index_path(settings)
    _report_update(target, *build_index(paths, target, load_embedder(settings.embedder), rebuild=rebuild,
                                        chunking=chunking(settings), skip_bad=skip_bad))


@kb_app.command("add")
def kb_add(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to add or refresh.")],
    index: IndexOption = None,
    skip_bad: SkipBadOption = False,
) -> None:
    """Add or refresh documents in an existing index (ids relative to the root it was built from)."""
    from assistant.bootstrap import index_path
    from knowledge.embedder import load_embedder
    from knowledge.ingest import add_to_index

    settings = _settings(index=index)
    target = index_path(settings)
    _report_update(target, *add_to_index(paths, target, load_embedder(settings.embedder), skip_bad=skip_bad))


@kb_app.command("remove")
def kb_remove(
    doc_ids: Annotated[list[str], typer.Argument(help="Document ids to delete, e.g. billing/refund-policy.")],
    index: IndexOption = None,
) -> None:
    """Delete documents and their chunks from an index."""
    from assistant.bootstrap import index_path
    from knowledge.ingest import remove_from_index

    target = index_path(_settings(index=index))
    kept = remove_from_index(doc_ids, target)
    typer.echo(f"{target}: removed {len(doc_ids)} documents; now {kept.document_count} documents, "
               f"{len(kept.chunks)} chunks")


@kb_app.command("calibrate")
def kb_calibrate(
    devset: Annotated[Path, typer.Option(help="Dev set JSONL with answerable and unanswerable questions.")],
    index: IndexOption = None,
) -> None:
    """Fit retrieval confidence on a dev set, so that abstaining reads a calibrated number."""
    from assistant.bootstrap import calibrate_index, index_path, open_retriever

    settings = _settings(index=index)
    retriever = open_retriever(settings)
    record = calibrate_index(retriever, devset)
    retriever.index.save(index_path(settings))
    typer.echo(f"calibrated on {record['n']} questions: midpoint {record['midpoint']:.3f}, slope "
               f"{record['slope']:.1f}, dev accuracy {record['dev_accuracy']:.3f}")


@kb_app.command("search")
def kb_search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100, help="Documents to return.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    index: IndexOption = None,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="Metadata KEY=VALUE; repeatable.")] = None,
) -> None:
    """Search an index and show the best documents with their scores."""
    from assistant.bootstrap import open_retriever

    wanted = {}
    for item in filters or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--filter takes KEY=VALUE (e.g. lang=en), not {item!r}")
        wanted[key] = value
    hits = open_retriever(_settings(index=index)).search(query, k=k, filters=wanted or None)
    if as_json:
        _print_json({"query": query, "k": k, "hits": [hit.to_dict() for hit in hits]})
        return
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())[:160]
        typer.echo(f"{rank}. {hit.doc_id}  [confidence {hit.confidence:.2f}, score {hit.score:.4f}]\n"
                   f"   {hit.title}: {snippet}")


@kb_app.command("stats")
def kb_stats(index: IndexOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Documents, chunks, embedder and size of an index."""
    from assistant.bootstrap import index_path
    from knowledge.index import KnowledgeIndex

    path = index_path(_settings(index=index))
    loaded = KnowledgeIndex.load(path)
    stats = {
        "index": str(path), "documents": loaded.document_count, "chunks": len(loaded.chunks),
        "index_type": loaded.card["config"].get("index_type"), "embedder": loaded.embedder_name,
        "dimension": loaded.dimension, "disk_bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
        "updated_at": loaded.card.get("updated_at") or loaded.card.get("created_at"),
    }
    if as_json:
        _print_json(stats)
    else:
        for key, value in stats.items():
            typer.echo(f"{key:>12}: {value}")


def _print_table(summary: dict, title: str) -> None:
    """Headline figures, then one row per group, for people (the JSON line is for programs)."""
    keys = [key for key, value in summary.items() if key not in ("n", "groups") and not isinstance(value, dict)]
    typer.echo(f"{title}  (n={summary['n']})")
    typer.echo("  " + "  ".join(f"{key:>9}" for key in ["group", *keys]))
    rows = [("all", summary), *summary.get("groups", {}).items()]
    for name, row in rows:
        cells = [f"{row[key]:9.3f}" if isinstance(row[key], float) else f"{'-':>9}" for key in keys]
        typer.echo(f"  {name[:9]:>9}  " + "  ".join(cells) + f"   n={row['n']}")


@eval_app.command("retrieval")
def eval_retrieval(
    testset: Annotated[Path | None, typer.Option(help="Test set JSONL (default: the demo test set).")] = None,
    index: IndexOption = None,
    k: Annotated[str, typer.Option("-k", "--k", help="Cut-offs, comma-separated.")] = "1,5,20",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on the last line.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write one JSONL record per item here.")] = None,
) -> None:
    """hit@k, MRR and nDCG@10 of the retriever on the answerable items of a test set."""
    from assistant.bootstrap import open_retriever
    from assistant.evaluation.retrieval import evaluate_retrieval
    from assistant.evaluation.testsets import load_testset
    from knowledge.demo_data import TESTSET

    try:
        ks = [int(part) for part in k.split(",") if part.strip()]
    except ValueError as err:
        raise typer.BadParameter(f"-k takes comma-separated integers such as 1,5,20, not {k!r}") from err
    if not ks or min(ks) < 1:
        raise typer.BadParameter("-k needs positive cut-offs such as 1,5,20")
    retriever = open_retriever(_settings(index=index))
    items = load_testset(testset or TESTSET, retriever.index.document_hashes)
    summary, records = evaluate_retrieval(
        items, lambda item, depth: [h.doc_id for h in retriever.search(item.question, history=item.history, k=depth)],
        ks)
    if out:
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    if as_json:
        _print_json(summary)
    else:
        _print_table(summary, f"retrieval on {testset or TESTSET}")


@eval_app.command("answers")
def eval_answers(
    testset: Annotated[Path | None, typer.Option(help="Test set JSONL (default: the demo test set).")] = None,
    index: IndexOption = None,
    adapter: Annotated[str | None, typer.Option(help="Adapter name, path or `base`.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on the last line.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write one JSONL record per item here.")] = None,
) -> None:
    """Answer rate, abstention, groundedness, fallbacks, citations, overlap and latency of the assistant."""
    from assistant.bootstrap import build_dialogue_manager
    from assistant.evaluation.answers import evaluate_answers
    from assistant.evaluation.testsets import load_testset
    from knowledge.demo_data import TESTSET

    manager = build_dialogue_manager(_settings(index=index), adapter=adapter)
    items = load_testset(testset or TESTSET, manager.retriever.index.document_hashes)[:limit]
    summary, records = evaluate_answers(manager, items)
    if out:
        out.write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records),
                       encoding="utf-8")
    if as_json:
        _print_json(summary)
    else:
        for key, value in summary.items():
            shown = f"{value:.3f}" if isinstance(value, float) else value
            typer.echo(f"{key:>20}: {shown}")


IntentsFile = Annotated[Path, typer.Option(help="Intents as JSONL {\"text\", \"label\"} or CSV with a header.")]
TextColumnOption = Annotated[str, typer.Option(help="Column (CSV) or field (JSONL) holding the text.")]
LabelColumnOption = Annotated[str, typer.Option(help="Column (CSV) or field (JSONL) holding the label.")]
SkipBadLinesOption = Annotated[bool, typer.Option("--skip-bad", help="Leave out bad lines instead of stopping.")]


@eval_app.command("intents")
def eval_intents(
    model: Annotated[str, typer.Option(help="Classifier name under the data dir, or a path.")],
    testset: IntentsFile,
    text_column: TextColumnOption = "text",
    label_column: LabelColumnOption = "label",
    skip_bad: SkipBadLinesOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on the last line.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write one JSONL record per item here.")] = None,
) -> None:
    """Accuracy, macro F1, in-scope accuracy and out-of-scope (`oos`) recall and precision of a classifier."""
    from assistant.classify import open_classifier
    from assistant.evaluation.intents import intent_metrics, read_intents

    items = read_intents(testset, text_column=text_column, label_column=label_column, skip_bad=skip_bad)
    classifier = open_classifier(_settings(), model)
    assert classifier is not None  # a name was given
    predictions = classifier.predict([text for text, _ in items])
    summary = intent_metrics([label for _, label in items], [label for label, _ in predictions])
    if out:
        out.write_text("".join(json.dumps({"text": text, "label": label, "predicted": guess, "probability": p},
                                          ensure_ascii=False) + "\n"
                               for (text, label), (guess, p) in zip(items, predictions, strict=True)),
                       encoding="utf-8")
    if as_json:
        _print_json(summary)
        return
    typer.echo(f"intents on {testset} with {model}")
    for key, value in summary.items():
        if key != "labels":
            typer.echo(f"{key:>18}: {f'{value:.3f}' if isinstance(value, float) else value}")


@train_app.command("classifier")
def train_classifier(
    data: IntentsFile,
    out: Annotated[str, typer.Option(help="Classifier name (saved under <data dir>/classifiers/) or a path.")],
    text_column: TextColumnOption = "text",
    label_column: LabelColumnOption = "label",
    frozen: Annotated[bool, typer.Option(
        "--frozen", help="Logistic regression on frozen embeddings (minutes) instead of fine-tuning.")] = False,
    epochs: Annotated[int | None, typer.Option(min=1, help="Most fine-tuning epochs (early stop on dev).")] = None,
    refit: Annotated[bool, typer.Option(
        help="After dev has chosen the epochs and threshold, fine-tune again on all texts (about twice the time).")
    ] = True,
    max_in_scope_loss: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="In-scope dev accuracy the out-of-scope threshold may cost.")] = None,
    threads: Annotated[int | None, typer.Option(
        min=1, help="CPU threads (default: the settings' threads, else all cores; 1 when another job shares them).")
    ] = None,
    skip_bad: SkipBadLinesOption = False,
) -> None:
    """Fit an intent / out-of-scope classifier on the MiniLM embedder; a 10% dev split sets its threshold."""
    import dataclasses

    import torch

    from training.classifier import ClassifierConfig
    from training.classifier import train_classifier as fit

    settings = _settings()
    if threads or settings.threads:
        torch.set_num_threads(threads or settings.threads)
    overrides = {"frozen": frozen, "epochs": epochs, "refit": refit, "max_in_scope_loss": max_in_scope_loss}
    config = dataclasses.replace(ClassifierConfig(), **{k: v for k, v in overrides.items() if v is not None})
    target = settings.artifact_path("classifier", out)
    try:
        card = fit(data, target, config, text_column=text_column, label_column=label_column, skip_bad=skip_bad)
    except KeyboardInterrupt as err:  # the half-written folder is removed; a classifier already there stays
        _stopped(err)
    dev = card["metrics"]["dev"]
    shown = ", ".join(f"{k} {v:.3f}" for k, v in dev.items() if isinstance(v, float))
    typer.echo(f"{target}: {len(card['config']['labels'])} labels, oos threshold {card['config']['threshold']:.3f}; "
               f"dev {shown}; {card['metrics']['train_s']:.0f} s")


def _stopped(err: BaseException) -> None:
    """Training stopped by Ctrl-C: say what was kept and how to go on; exit 130 like an interrupted command."""
    typer.echo(f"error: {str(err) or 'stopped; nothing was saved, the previous artifact (if any) is unchanged'}",
               err=True)
    raise typer.Exit(130) from None


@train_app.command("pretrain")
def train_pretrain(
    data: Annotated[list[Path], typer.Option(
        "--data", help="Text file, folder of documents, transcript JSONL or JSONL with a \"text\" field; repeatable.")],
    out: Annotated[str, typer.Option("--out", help="Model name under <data dir>/models/, or a path.")],
    from_scratch: Annotated[bool, typer.Option("--from-scratch", help="Train a new small Llama.")] = False,
    preset: Annotated[str, typer.Option(help="From-scratch size: tiny (≈ 3M parameters) or small (≈ 50M).")
                      ] = "small",
    base: Annotated[str | None, typer.Option(help="Model to continue (name or folder); default: the base.")] = None,
    tokenizer: Annotated[str | None, typer.Option(help="Tokenizer of a from-scratch model; default: the base's.")
                         ] = None,
    epochs: Annotated[float, typer.Option(help="Passes over the train blocks.")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps; overrides --epochs.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate; default 1e-3 scratch, 5e-5 continued.")
                  ] = None,
    batch_size: Annotated[int, typer.Option(help="Blocks per device per micro-batch.")] = 8,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per optimizer step.")] = 1,
    block_size: Annotated[int, typer.Option(help="Tokens per training block.")] = 512,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights and the data order.")] = 0,
    save_steps: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 200,
    eval_steps: Annotated[int | None, typer.Option(help="Dev loss every N steps; default: --save-steps.")] = None,
    dev_fraction: Annotated[float, typer.Option(help="Share of documents held out for dev perplexity.")] = 0.05,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from this run's last checkpoint.")] = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave out malformed JSONL lines and unreadable files."
                                           )] = False,
) -> None:
    """Pretrain a causal LM from scratch, or continue pretraining the base on support text; dev perplexity before
    and after."""
    from training.pretrain import PretrainConfig, pretrain
    from training.runs import TrainingInterrupted

    config = PretrainConfig(
        data=data, out=out, from_scratch=from_scratch, preset=preset, base=base, tokenizer=tokenizer,
        epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
        block_size=block_size, seed=seed, save_steps=save_steps, eval_steps=eval_steps, dev_fraction=dev_fraction,
        resume=resume, skip_bad=skip_bad)
    try:
        result = pretrain(config, _settings())
    except (TrainingInterrupted, KeyboardInterrupt) as err:
        _stopped(err)
    metrics = result.card["metrics"]
    typer.echo(f"dev perplexity: {metrics['dev_perplexity_before']:.2f} before, {metrics['dev_perplexity_after']:.2f} "
               f"after, {metrics['dev_perplexity_unigram']:.2f} from token frequencies alone ({metrics['steps']} "
               f"steps, {metrics['train_tokens']} train tokens, {metrics['dev_tokens']} dev tokens)")
    typer.echo(f"saved {result.path}; use it with ASSISTANT_MODEL={out}")


@train_app.command("sft")
def train_sft_command(
    out: Annotated[str, typer.Option(help="Adapter name (under <data dir>/adapters/) or a path.")],
    data: Annotated[list[Path] | None, typer.Option(help="Transcript JSONL file; repeatable.")] = None,
    from_index: Annotated[str | None, typer.Option(help="Derive pairs from this index; rebuild raw transcripts "
                                                        "into its server prompts.")] = None,
    dstc11: Annotated[Path | None, typer.Option(help="DSTC11 Track 5 folder: add its training split.")] = None,
    dstc11_limit: Annotated[int, typer.Option(min=0, help="Most DSTC11 examples.")] = 400,
    near_miss_every: Annotated[int, typer.Option(min=0, help="Every n-th question derived from the index is also "
                                                 "asked without its article, to learn to decline (0: never).")] = 3,
    absent_name_every: Annotated[int, typer.Option(min=0, help="Every n-th article is also asked about a product "
                                                   "the index never mentions, to learn to decline (0: never).")] = 0,
    target_sentences: Annotated[int, typer.Option(min=1, help="Most sentences of an answer derived from the index "
                                                  "(the ones that answer best; procedures keep every step).")] = 3,
    held_out: Annotated[list[Path] | None, typer.Option(help="Another test/dev set whose questions must not be "
                                                              "trained on; repeatable.")] = None,
    base: Annotated[str | None, typer.Option(help="Base model name or folder (default: the configured model).")] = None,
    epochs: Annotated[float, typer.Option(min=0.01)] = 2.0,
    max_steps: Annotated[int, typer.Option(help="Stop after this many optimiser steps (-1: epochs decide).")] = -1,
    lr: Annotated[float, typer.Option(min=0.0)] = 2e-4,
    rank: Annotated[int, typer.Option(min=1)] = 8,
    alpha: Annotated[int, typer.Option(min=1)] = 16,
    max_tokens: Annotated[int, typer.Option(min=16, help="Longer examples are left out.")] = 1024,
    layout: Annotated[str, typer.Option(help="Batches of similar-length examples, padded, no mask (grouped); whole "
                                        "examples packed into rows of --row-tokens (packed); or one a batch (single).")]
    = "grouped",
    batch_tokens: Annotated[int, typer.Option(min=16, help="Most tokens of a grouped batch, padding included.")] = 1024,
    row_tokens: Annotated[int, typer.Option(min=16, help="Packed row length (longer rows cost more attention on "
                                            "CPU).")] = 512,
    grad_accum: Annotated[int, typer.Option(min=1)] = 8,
    eval_every: Annotated[int, typer.Option(min=1, help="Steps between dev evaluations and checkpoints.")] = 25,
    patience: Annotated[int, typer.Option(min=0, help="Evaluations without progress before stopping (0: never).")] = 3,
    dev_fraction: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.1,
    seed: int = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint of this name.")] = False,
    merge: Annotated[bool, typer.Option("--merge", help="Also write the merged model to <data dir>/models/<name>.")]
    = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave out malformed lines, go on.")] = False,
) -> None:
    """LoRA fine-tuning on transcripts, pairs derived from an index and DSTC11; writes adapters/<name>/ + card."""
    from assistant.models import resolve_model_dir
    from training.mixture import Mixture, assemble, write_run_data
    from training.runs import TrainingInterrupted
    from training.sft import SFTConfig, merge_adapter, train_sft

    settings = _settings(**({"model": base} if base else {}))
    try:  # before the data is assembled: a bad option fails at once
        config = SFTConfig(epochs=epochs, max_steps=max_steps, lr=lr, rank=rank, alpha=alpha, max_tokens=max_tokens,
                           layout=layout, batch_tokens=batch_tokens, row_tokens=row_tokens, grad_accum=grad_accum,
                           eval_every=eval_every, patience=patience, seed=seed)
    except ValueError as err:
        raise typer.BadParameter(f"--{err}") from err
    if not (data or from_index or dstc11):
        raise typer.BadParameter("give training data: --data transcripts.jsonl, --from-index NAME and/or --dstc11 DIR")
    base_dir = resolve_model_dir(settings)
    target = settings.artifact_path("adapter", out)
    mixture = Mixture(transcripts=data or [], index=from_index, dstc11=dstc11, dstc11_limit=dstc11_limit,
                      near_miss_every=near_miss_every, absent_name_every=absent_name_every,
                      target_sentences=target_sentences,
                      held_out=held_out or [], dev_fraction=dev_fraction, seed=seed, skip_bad=skip_bad)
    train, dev = assemble(mixture, settings)
    files = write_run_data(settings.data_dir / "training" / target.name, train, dev, data or [])
    resume_command = shlex.join(["assistant", *sys.argv[1:], *([] if resume else ["--resume"])])
    try:
        result = train_sft(train, dev, base_dir=base_dir, base_name=settings.model, out_dir=target,
                           checkpoint_dir=settings.data_dir / "checkpoints" / f"adapter-{target.name}", config=config,
                           data_files=files, resume=resume, threads=settings.threads, resume_command=resume_command,
                           sources={**mixture.counts, "index": from_index, "dstc11": str(dstc11) if dstc11 else None,
                                    "near_miss_every": near_miss_every, "absent_name_every": absent_name_every,
                                    "target_sentences": target_sentences})
    except (TrainingInterrupted, KeyboardInterrupt) as err:
        _stopped(err)
    typer.echo(f"adapter {target}: dev loss {result.metrics['dev_loss_before']} -> {result.metrics['dev_loss']}, "
               f"{result.metrics['steps']} steps, {result.metrics['tokens_per_s']} tokens/s")
    if merge:
        merged = merge_adapter(base_dir, target, settings.artifact_path("model", target.name))
        typer.echo(f"merged model {merged}")


@train_app.command("promote")
def train_promote(
    name: Annotated[str, typer.Argument(help="Adapter name or path, or `base` for none.")],
    no_gate: Annotated[bool, typer.Option("--no-gate", help="Promote without running the release gate.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="Gate file (TOML, a [tolerances] table).")] = None,
    testset: Annotated[Path | None, typer.Option(help="Test set the gate runs (default: the demo test set).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Gate on the first N items only.")] = None,
) -> None:
    """Make an adapter the one served as `production`, once the release gate passed (next start, or live in the
    console)."""
    from assistant.cli_reports import print_gate
    from assistant.evaluation.gate import GateConfig
    from assistant.evaluation.model_runs import resolved_adapter, run_gate
    from assistant.models import promote_adapter

    settings = _settings()
    if not no_gate:
        gate_config = GateConfig.load(config or settings.gate_config)
        resolved_adapter(settings, name)  # a missing adapter fails before the gate loads anything
        result = run_gate(settings, name, "production", config=gate_config, testset=testset, limit=limit)
        print_gate(result)
        if not result["passed"]:
            typer.echo(f"not promoted: {name} is worse than production on {', '.join(result['failed'])}", err=True)
            raise typer.Exit(1)
    else:
        log.warning("promoting %s without the release gate", name)
    typer.echo(f"production adapter: {promote_adapter(settings, name)}")


@train_app.command("export")
def train_export(
    out: Annotated[Path, typer.Option("--out", help="JSONL file to write (replaced whole, never half-written).")],
    since: Annotated[str | None, typer.Option(
        help="Only conversations started on or after this ISO date or date-time (UTC unless offset).")] = None,
    until: Annotated[str | None, typer.Option(
        help="Only conversations started before this date-time, or up to the end of this date.")] = None,
    channel: Annotated[str | None, typer.Option(
        help="Channels, comma-separated: web, api, cli, eval (default: all but eval).")] = None,
    feedback: Annotated[str | None, typer.Option(
        help="`positive`: only thumbs-up bot replies (agent replies are always kept).")] = None,
    negatives: Annotated[bool, typer.Option(
        "--negatives", help="Write thumbs-down replies as preference records {prompt, chosen, rejected}.")] = False,
    index: IndexOption = None,
) -> None:
    """Export logged conversations as training transcripts: each answer or agent reply after its turn's prompt."""
    from assistant.store import Store
    from training.export import check_output, evidence_ranker, export_options, export_transcripts

    options = export_options(since, until, channel, feedback, negatives)  # bad options fail before any work
    check_output(out)
    settings = _settings(index=index)
    summary = export_transcripts(Store.open(settings.store_url), out, settings, options, evidence_ranker(settings))
    preferences = f" and {summary.preferences} preference records" if summary.preferences else ""
    typer.echo(f"wrote {summary.records} training records{preferences} from {summary.conversations} conversations "
               f"to {summary.path}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    adapter: Annotated[str | None, typer.Option(help="Adapter name, path or `base`.")] = None,
) -> None:
    """Start the web chat (and API) on one server."""
    import uvicorn

    from assistant.serving import build_server

    settings = _settings(host=host, port=port, adapter=adapter)
    server_app = build_server(settings)
    log.info("serving the chat on http://%s:%d/", settings.host, settings.port)
    # Open chat streams (server-sent events) would otherwise hold a shutdown indefinitely.
    uvicorn.run(server_app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=5)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    for name in ("assistant", "knowledge", "training", "ui"):
        logging.getLogger(name).setLevel(logging.INFO)


from assistant import cli_reports  # noqa: E402,F401  (registers eval logs|compare|gate and report)


def main() -> None:
    """Entry point: user-fixable problems print one clear line and exit with status 2."""
    from knowledge import KnowledgeError

    _configure_logging()
    try:
        app()
    except (AssistantError, KnowledgeError) as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except OSError as err:  # a file or folder the command needs: named on one line, never a traceback
        where = f": {err.filename}" if err.filename else ""
        typer.echo(f"error: {err.strerror or err}{where}. Check the path, or set ASSISTANT_DATA_DIR to a folder this "
                   "process can write", err=True)
        sys.exit(2)


if __name__ == "__main__":  # `python -m assistant.cli`: run the imported module, where cli_reports registered
    from assistant.cli import main as package_main

    package_main()
