"""`firebreak`: the command line, a thin shell over `firebreak.service`.

Errors become one line on stderr (`firebreak: <file>: <reason>`) and a non-zero exit, here only.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from firebreak.bench.clips import fetch_real_clips
from firebreak.bench.demo import DEMO_BANK, DemoRow, bank_demo_clips, build_demo_cases
from firebreak.classify.base import Scorer
from firebreak.classify.head import DetectorHead, ScorerSpec
from firebreak.classify.onnx_model import OnnxImageScorer
from firebreak.classify.scorers import build_scorers, head_scorer
from firebreak.classify.training import evaluate_head, train_head
from firebreak.errors import FirebreakError
from firebreak.exchange import ListFormat, guess_format
from firebreak.exchange.evidence import verify_evidence_package
from firebreak.exchange.fetchers import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S, fetch_into_bank
from firebreak.exchange.orgs import MAX_BYTES as ORGS_MAX_BYTES
from firebreak.exchange.orgs import (
    OrgFormat,
    guess_org_format,
    parse_orgs,
    write_csv,
    write_json,
)
from firebreak.incidents import IncidentDesk
from firebreak.live.session import LiveEvent
from firebreak.posts import PostDesk, scanner_for
from firebreak.scale.peers import peers_from_settings
from firebreak.service import Firebreak, MatchResult
from firebreak.settings import Settings, get_settings
from firebreak.sharing import Publisher, Puller
from firebreak.signals.registry import SIGNAL_TYPES
from firebreak.store import BANK_KINDS, INCIDENT_STATUSES
from firebreak.streams import WatchedStream, WatchOptions
from firebreak.text.context import (
    ContextClassifier,
    TextEmbedder,
    format_evaluation,
    read_labelled,
    train_context_head,
)
from firebreak.text.context import evaluate as evaluate_text
from firebreak.text.onscreen import ScreenReader
from firebreak.text.scan import TextScanner, read_posts

if TYPE_CHECKING:  # the benchmark's modules need the dev extras; imported when `bench` runs
    from firebreak.bench.report import BenchRun

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
bank_app = typer.Typer(no_args_is_help=True, help="Banks of known content.")
clips_app = typer.Typer(no_args_is_help=True, help="Real filmed clips for tests and demos.")
app.add_typer(bank_app, name="bank")
app.add_typer(clips_app, name="clips")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks against the anchors (dev extras).")
app.add_typer(bench_app, name="bench")
live_app = typer.Typer(no_args_is_help=True, help="Live streams: watch, alert, act.")
app.add_typer(live_app, name="live")
exchange_app = typer.Typer(
    no_args_is_help=True, help="Share banks with partner instances: signed feeds, opinions."
)
app.add_typer(exchange_app, name="exchange")
text_app = typer.Typer(
    no_args_is_help=True, help="Posts naming designated organisations, in any language."
)
app.add_typer(text_app, name="text")
worker_app = typer.Typer(
    no_args_is_help=True, help="The upload path at scale: workers on a durable queue."
)
app.add_typer(worker_app, name="worker")
keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke.")
app.add_typer(keys_app, name="keys")
incident_app = typer.Typer(
    no_args_is_help=True, help="Live incidents: review queue, decisions, evidence packages."
)
app.add_typer(incident_app, name="incident")
orgs_app = typer.Typer(
    no_args_is_help=True, help="Registry of designated organisations and individuals."
)
app.add_typer(orgs_app, name="orgs")

# Tables keep their columns in logs and pipes, where Rich would otherwise assume 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"firebreak: {message}", markup=False, highlight=False)
    return typer.Exit(code)


@contextmanager
def opened(settings: Settings | None = None) -> Iterator[Firebreak]:
    """A Firebreak over the configured store; FirebreakErrors end the command with one line."""
    fb: Firebreak | None = None
    try:
        chosen = settings or get_settings()
        fb = Firebreak(chosen, peers_from_settings(chosen))
        yield fb
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    finally:
        if fb is not None:
            fb.close()


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # a bar in a log is noise
    )


@bank_app.command("create")
def bank_create(
    name: str,
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(BANK_KINDS)}.")] = "block",
) -> None:
    """Create an empty bank."""
    with opened() as fb:
        bank = fb.create_bank(name, kind)
    out.print(f"created bank {bank.name} ({bank.kind})", markup=False)


@bank_app.command("list")
def bank_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List banks with their item counts."""
    with opened() as fb:
        banks = fb.list_banks()
    if as_json:
        for b in banks:
            print(json.dumps({"bank": b.name, "kind": b.kind, "items": b.item_count}))
        return
    table = Table("bank", "kind", "items", "created")
    for b in banks:
        table.add_row(b.name, b.kind, str(b.item_count), b.created_at.isoformat(timespec="seconds"))
    out.print(table)


@bank_app.command("add")
def bank_add(name: str, files: list[Path]) -> None:
    """Hash media files and bank them; a file already in the bank is left as it is."""
    failed = 0
    with opened() as fb:
        fb.store.get_bank(name)
        with progress() as bar:
            task = bar.add_task(f"banking into {name}", total=len(files))
            for path in files:
                try:
                    outcome = fb.bank_file(name, path)
                except FirebreakError as exc:
                    failed += 1
                    err.print(f"firebreak: {exc}", markup=False, highlight=False)
                else:
                    state = "added" if outcome.created else "already banked"
                    out.print(f"{state}: {outcome.item.name}", markup=False, highlight=False)
                bar.advance(task)
    if failed:
        raise typer.Exit(1)


@bank_app.command("remove")
def bank_remove(name: str, item: str) -> None:
    """Remove one item (by name) from a bank."""
    with opened() as fb:
        fb.remove_item(name, item)
    out.print(f"removed {item} from {name}", markup=False, highlight=False)


@bank_app.command("export")
def bank_export(
    name: str,
    fmt: Annotated[
        ListFormat,
        typer.Option("--format", help="te (ThreatExchange local_file), csv or gifct"),
    ] = ListFormat.TE,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Write a bank as a hash list (ThreatExchange `local_file` lines, CSV, or GIFCT-style CSV
    with each item's label, category, source and date)."""
    with opened() as fb:
        text = fb.export_bank(name, fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


@bank_app.command("import")
def bank_import(
    name: str,
    file: Path,
    fmt: Annotated[
        ListFormat | None,
        typer.Option("--format", help="te, csv or gifct (default: from the header, then the name)"),
    ] = None,
) -> None:
    """Bank every hash of a hash list (ThreatExchange `local_file`, CSV or GIFCT-style CSV)."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{file}: cannot read hash list ({exc})") from None
    with opened() as fb:
        summary = fb.import_hashes(name, text, fmt or guess_format(file.name, text), str(file))
    out.print(
        f"imported {summary.added} items into {name} ({summary.skipped} already there, "
        f"{summary.passed_through} signals of unknown types kept as they are)",
        markup=False,
        soft_wrap=True,
    )


@bank_app.command("fetch")
def bank_fetch(
    name: str,
    location: Annotated[
        str, typer.Option("--location", help="The list: a file's path, or its http(s) URL.")
    ],
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="file, http or a registered fetcher (default: http for an http(s) URL, else file).",
        ),
    ] = None,
    fmt: Annotated[
        ListFormat | None,
        typer.Option("--format", help="te, csv or gifct (default: from the header, then the name)"),
    ] = None,
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", min=1, help="Refuse a bigger list.")
    ] = DEFAULT_MAX_BYTES,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds an http fetch may take.")
    ] = DEFAULT_TIMEOUT_S,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="KEY=VALUE for a registered fetcher (repeatable)."),
    ] = None,
) -> None:
    """Bank what is new in a hash list since the last fetch (the bank, a block bank, is made
    when missing). An unchanged list adds nothing; the checkpoint is kept under FIREBREAK_HOME."""
    if source is None:
        is_url = location.lower().startswith(("http://", "https://"))
        source = "http" if is_url else "file"
    options = {}
    for pair in option or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"--option {pair!r}: expected KEY=VALUE")
        options[key.strip()] = value
    with opened() as fb:
        summary = fetch_into_bank(
            fb,
            name,
            source,
            location,
            fmt,
            max_bytes=max_bytes,
            timeout_s=timeout,
            options=options,
        )
    what = (
        f"fetched {summary.fetched} hashes from {location}"
        if summary.changed
        else f"{location} unchanged since the last fetch"
    )
    removed = f", {summary.removed} removed" if summary.removed else ""
    made = ", a new block bank," if summary.created_bank else ""
    out.print(
        f"{what}: added {summary.added} items to {name}{made} ({summary.skipped} already there, "
        f"{summary.passed_through} signals of unknown types kept as they are{removed})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command("hash")
def hash_command(
    file: Path,
    signal: Annotated[
        str | None, typer.Option(help=f"One of: {', '.join(SIGNAL_TYPES)} (default by media).")
    ] = None,
) -> None:
    """Print a file's hashes in the industry formats."""
    if signal is not None and signal not in SIGNAL_TYPES:
        raise fail(f"unknown signal type: {signal} (one of {', '.join(SIGNAL_TYPES)})")
    with opened() as fb:
        lines = fb.hash_strings(file, signal)
    sys.stdout.write("".join(f"{line}\n" for line in lines))


def _run_worker(kind: Literal["hasher", "matcher"], name: str | None) -> None:
    import signal
    import threading

    from firebreak.scale.workers import WorkerConfig, run_worker

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    settings = get_settings()
    try:
        stats = run_worker(kind, settings, stop, WorkerConfig.from_settings(settings), name)
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    err.print(
        f"{stats.name}: {stats.processed} processed, {stats.repeated} repeated, "
        f"{stats.failed} failed, {stats.dead} dead-lettered",
        markup=False,
        highlight=False,
    )


WorkerName = Annotated[str | None, typer.Option(help="Consumer name (default host-pid).")]


@worker_app.command("hasher")
def worker_hasher(name: WorkerName = None) -> None:
    """Hash uploads from the queue until stopped (SIGTERM or Ctrl-C)."""
    _run_worker("hasher", name)


@worker_app.command("matcher")
def worker_matcher(name: WorkerName = None) -> None:
    """Match hashed uploads, judge, act and audit, until stopped (SIGTERM or Ctrl-C)."""
    _run_worker("matcher", name)


@worker_app.command("submit")
def worker_submit(
    files: Annotated[list[Path], typer.Argument(help="Uploads to put on the queue.")],
    metadata: Annotated[str, typer.Option(help="A JSON object sent with each.")] = "{}",
) -> None:
    """Put upload events for FILES on the queue; prints one event id a line."""
    from firebreak.scale.queue import open_queue
    from firebreak.scale.workers import WorkerConfig, submit_upload

    try:
        extra = json.loads(metadata)
    except json.JSONDecodeError as exc:
        raise fail(f"--metadata is not JSON: {exc.msg}") from None
    if not isinstance(extra, dict):
        raise fail("--metadata must be a JSON object")
    config = WorkerConfig.from_settings(get_settings())
    try:
        queue = open_queue(config.queue_url, config.prefix, config.visibility_timeout_s)
        try:
            for event_id in submit_upload(queue, files, extra):
                print(event_id, flush=True)
        finally:
            queue.close()
    except FirebreakError as exc:
        raise fail(str(exc)) from None


@worker_app.command("catalogue")
def worker_catalogue(
    out_path: Annotated[Path, typer.Argument(help="Where the catalogue JSONL goes.")],
) -> None:
    """Write a sweep catalogue of every file the hasher workers stored signals for (one line a
    distinct file), so `firebreak sweep` matches them without decoding anything again."""
    from firebreak.scale.workers import hash_params
    from firebreak.store.scale import UploadLedger

    with opened() as fb:
        params = hash_params(fb.settings)
        count = 0
        with out_path.open("w", encoding="utf-8") as catalogue:
            for sha256 in UploadLedger(fb.store.engine).iter_stored_files(params):
                stored = {"sha256": sha256, "params": params}
                catalogue.write(json.dumps({"id": sha256, "stored": stored}) + "\n")
                count += 1
    out.print(f"{count:,} stored files written to {out_path}", highlight=False)


@app.command("sweep")
def sweep_command(
    catalogue: Annotated[
        Path, typer.Argument(help="JSONL: one past upload a line (id and path, URL or hashes).")
    ],
    bank: Annotated[
        list[str], typer.Option("--bank", help="A bank whose items to look for (repeatable).")
    ],
    since_version: Annotated[
        int | None, typer.Option(help="Only items banked after this index version.")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only items banked at or after this time (UTC).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="A Dask scheduler (tcp://host:port); a local cluster when not given."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes of a local cluster.")] = 2,
    partition_size: Annotated[int, typer.Option(min=1, help="Catalogue lines a task.")] = 2000,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Go on with the sweep of this id.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The summary as JSON.")] = False,
) -> None:
    """Sweep a catalogue of past uploads for copies of banked items, on Dask, and act on what
    is found as on an upload; stored hashes make it an index job, no decoding."""
    from firebreak.scale.sweep import Sweep, SweepProgress

    with opened() as fb:
        sweep = Sweep.open(
            fb,
            catalogue,
            bank,
            since_version=since_version,
            since=since,
            partition_size=partition_size,
            sweep_id=resume,
        )
        done = len(sweep.finished_partitions())
        d = sweep.definition
        err.print(
            f"sweep {sweep.id}: {len(d.items)} items, {done} of {d.partitions} partitions done "
            f"(go on after an interruption with --resume {sweep.id})",
            markup=False,
            highlight=False,
        )
        with progress() as bar:
            task = bar.add_task("sweeping", total=d.partitions, completed=done)

            def show(p: SweepProgress) -> None:
                bar.update(
                    task,
                    completed=p.partitions_done,
                    description=f"{p.entries:,} uploads, {p.matches} matches, "
                    f"{p.items_per_s:,.0f}/s",
                )

            try:
                summary = sweep.run(scheduler=scheduler, workers=workers, progress=show)
            except KeyboardInterrupt:
                raise fail(f"interrupted; go on with --resume {sweep.id}", 130) from None
    if as_json:
        print(json.dumps(summary.to_json()), flush=True)
        return
    out.print(
        f"swept {summary.entries_this_run:,} uploads in {summary.scan_s:.1f} s: "
        f"{summary.items_per_s:,.0f} uploads/s; {summary.matches} matches, "
        f"{summary.reviews} for review, {summary.errors} unreadable, {summary.acted} acted on; "
        f"findings in {summary.directory}",
        markup=False,
        highlight=False,
    )


@app.command("match")
def match_command(
    files: list[Path],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
) -> None:
    """Match media files against every bank."""
    failed = 0
    with opened() as fb:
        for path in files:
            try:
                result = fb.match_file(path)
            except FirebreakError as exc:
                failed += 1
                err.print(f"firebreak: {exc}", markup=False, highlight=False)
                continue
            if as_json:
                sys.stdout.write(json.dumps(result.to_json()) + "\n")
                sys.stdout.flush()
            else:
                out.print(_match_table([result]))
    if failed:
        raise typer.Exit(1)


@live_app.command("watch")
def live_watch(
    source: Annotated[
        str, typer.Argument(help="rtmp://, srt://, an HLS http(s):// URL, or a file.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per event.")] = False,
    realtime: Annotated[
        bool, typer.Option(help="Play a local file at its own pace, as a publisher would.")
    ] = True,
    record: Annotated[
        bool, typer.Option(help="Record the stream under FIREBREAK_HOME/recordings.")
    ] = True,
    incident_bank: Annotated[
        str | None,
        typer.Option(help="On an alert, bank the recording here so every later copy is blocked."),
    ] = None,
    impulse: Annotated[
        bool, typer.Option(help="Score the soundtrack for gunfire-like impulses.")
    ] = False,
    model: Annotated[
        list[Path] | None,
        typer.Option(help="An ONNX picture classifier to score frames with (repeatable)."),
    ] = None,
    watch_list: Annotated[
        Path | None, typer.Option(help="Read on-screen text and match it against this list.")
    ] = None,
    head: Annotated[
        Path | None,
        typer.Option(help="A head from `firebreak train`; it brings its own scorers."),
    ] = None,
) -> None:
    """Watch a stream until it ends or is interrupted; alert on banked content as it appears.

    Alerts run the actions the settings name (FIREBREAK_LIVE_CUT cuts the stream,
    FIREBREAK_ALERT_WEBHOOK_URL is told); with --incident-bank, the recording so far is banked
    at the first alert, and again in full when the stream ends.
    """

    def emit(event: LiveEvent) -> None:
        if as_json:
            print(json.dumps(event.to_json()), flush=True)
        elif event.event == "alert":
            out.print(
                f"[bold red]ALERT[/] {event.stream_time:7.1f} s  {event.bank}/{event.item}"
                f"  score {event.score:.2f}"
            )
        else:
            detail = f" ({event.detail})" if event.detail else ""
            out.print(f"[dim]{event.stream_time:7.1f} s  {event.state}{detail}[/]")

    with opened() as fb:
        scorers = live_scorers(impulse, model or [], watch_list, head)
        if incident_bank and not record:
            raise fail("--incident-bank needs the stream recorded (drop --no-record)")
        options = WatchOptions(realtime, record, incident_bank, scorers)
        watched = WatchedStream(fb, source, options, emit)
        with suppress(KeyboardInterrupt):
            watched.run()


def live_scorers(
    impulse: bool, models: list[Path], watch_list: Path | None, head: Path | None
) -> list[Scorer]:
    """The scorers the options name; a head brings the scorers it was trained on."""
    named = ScorerSpec(impulse, False, None, str(watch_list) if watch_list else None)
    scorers: list[Scorer] = [head_scorer(head)] if head else []
    return scorers + build_scorers(named) + [OnnxImageScorer(path) for path in models]


Actor = Annotated[str | None, typer.Option("--by", help="Who decides (default: FIREBREAK_ACTOR).")]
Note = Annotated[str, typer.Option(help="Why; kept in the audit log.")]


@incident_app.command("list")
def incident_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per incident.")] = False,
    every: Annotated[bool, typer.Option("--all", help="Decided incidents too.")] = False,
) -> None:
    """The review queue: incidents waiting for a decision, highest risk first."""
    with opened() as fb:
        statuses = INCIDENT_STATUSES if every else ("open", "escalated")
        incidents = fb.store.incidents.queue(statuses)
    if as_json:
        for incident in incidents:
            print(json.dumps(incident.to_json()), flush=True)
        return
    table = Table("incident", "status", "level", "source", "score", "alerts", "stream")
    for i in incidents:
        table.add_row(
            i.name, i.status, i.level, i.source, f"{i.max_score:.2f}", str(len(i.alerts)), i.stream
        )
    out.print(table)


@incident_app.command("report")
def incident_report(
    name: str,
    stream: Annotated[str, typer.Option(help="The stream reported.")],
    recording: Annotated[
        Path | None,
        typer.Option(help="Its recording (default: FIREBREAK_HOME/recordings/NAME.ts if any)."),
    ] = None,
    by: Actor = None,
    note: Note = "",
) -> None:
    """Open an incident from a report (a viewer's flag, a moderator who saw it)."""
    with opened() as fb:
        default = fb.settings.home / "recordings" / f"{name}.ts"
        recording = recording or (default if default.exists() else None)
        IncidentDesk(fb).report(name, stream, recording, by or fb.settings.actor, note)
    out.print(f"opened {name}")


@incident_app.command("show")
def incident_show(name: str) -> None:
    """An incident as JSON: its alerts (times, scores, signals, actions, frames) and decision."""
    with opened() as fb:
        print(json.dumps(fb.store.incidents.get(name).to_json(), indent=2))


@incident_app.command("confirm")
def incident_confirm(
    name: str,
    bank: Annotated[
        str, typer.Option(help="The block bank its recording goes into.")
    ] = "incidents",
    by: Actor = None,
    note: Note = "",
) -> None:
    """Confirm an incident: its recording so far is hashed and banked, so every later upload or
    re-stream of it is blocked. Run again while the stream goes on to bank more of it."""
    with opened() as fb:
        incident = IncidentDesk(fb).confirm(name, bank, by or fb.settings.actor, note)
    out.print(f"confirmed {name}: banked as {incident.banked_bank}/{incident.banked_item}")


@incident_app.command("reject")
def incident_reject(name: str, by: Actor = None, note: Note = "") -> None:
    """Reject an incident as a false alarm."""
    with opened() as fb:
        IncidentDesk(fb).reject(name, by or fb.settings.actor, note)
    out.print(f"rejected {name}")


@incident_app.command("escalate")
def incident_escalate(name: str, by: Actor = None, note: Note = "") -> None:
    """Escalate an incident to a senior reviewer; it stays in the queue."""
    with opened() as fb:
        IncidentDesk(fb).escalate(name, by or fb.settings.actor, note)
    out.print(f"escalated {name}")


@incident_app.command("export")
def incident_export(
    name: str,
    dest: Annotated[Path, typer.Option("--out", help="The package to write (.zip).")],
    by: Actor = None,
) -> None:
    """Write a signed evidence package: the incident's record and decision, its recording so far,
    its frame grabs and banked hashes, each file's SHA-256 and MD5, signed with Ed25519."""
    with opened() as fb:
        summary = IncidentDesk(fb).export(name, dest, by or fb.settings.actor)
    out.print(
        f"wrote {summary.path} ({summary.files} files, {summary.bytes} bytes), "
        f"signed by {summary.signer_fingerprint}"
    )


@incident_app.command("verify")
def incident_verify(
    package: Path,
    fingerprint: Annotated[
        str | None, typer.Option(help="The signer's key fingerprint you trust.")
    ] = None,
) -> None:
    """Check an evidence package: its signature and every file's hash. Exit 1 if it fails."""
    report = verify_evidence_package(package, fingerprint)
    if not report.ok:
        for problem in report.problems:
            err.print(f"firebreak: {package}: {problem}", markup=False, highlight=False)
        raise typer.Exit(1)
    out.print(f"{package}: valid, signed by {report.signer_fingerprint}")


@app.command("audit")
def audit(
    subject: Annotated[str | None, typer.Option(help="e.g. incident:NAME")] = None,
    limit: int = 100,
) -> None:
    """The audit log, newest first, one JSON line an entry."""
    with opened() as fb:
        for entry in fb.store.audit.entries(subject, limit):
            print(json.dumps(entry.to_json()), flush=True)


@exchange_app.command("share")
def exchange_share(
    bank: str, off: Annotated[bool, typer.Option("--off", help="Stop sharing it.")] = False
) -> None:
    """Publish a bank in the feed partners pull (its items now, then every change)."""
    with opened() as fb:
        fb.store.configure_bank(bank, fb.settings.actor, shared=not off)
    out.print(f"{bank}: {'no longer shared' if off else 'shared'}")


@exchange_app.command("key")
def exchange_key() -> None:
    """This instance's feed public key (PEM) and fingerprint, to give to partners."""
    with opened() as fb:
        publisher = Publisher(fb)
        print(publisher.public_key, end="")
        err.print(f"fingerprint {publisher.fingerprint}", markup=False, highlight=False)


@exchange_app.command("subscribe")
def exchange_subscribe(
    name: str,
    url: Annotated[str, typer.Option(help="The publisher's API, e.g. https://fb.partner.org.")],
    bank: Annotated[str, typer.Option(help="The publisher's shared bank.")],
    publisher_key: Annotated[
        Path, typer.Option(help="The publisher's public key (PEM, from `exchange key`).")
    ],
    token_env: Annotated[
        str, typer.Option(help="The environment variable holding the partner token.")
    ],
    into: Annotated[str | None, typer.Option(help="The local import bank.")] = None,
) -> None:
    """Subscribe to a partner's shared bank; `exchange pull` or `follow` fetches it."""
    with opened() as fb:
        sub = Puller(fb).subscribe(name, url, bank, publisher_key.read_text(), token_env, into)
    out.print(f"subscribed {name}: {sub.url} {sub.remote_bank} → {sub.local_bank}")


@exchange_app.command("pull")
def exchange_pull(name: str) -> None:
    """Fetch and apply everything new from a subscription, once."""
    with opened() as fb:
        summary = Puller(fb).pull(name)
    out.print(
        f"{name}: {summary.added} added, {summary.removed} removed, {summary.opinions} opinions;"
        f" cursor {summary.cursor}"
    )


@exchange_app.command("follow")
def exchange_follow(
    name: str,
    wait_s: Annotated[float, typer.Option(help="Long-poll this long per request.")] = 20.0,
) -> None:
    """Pull a subscription continuously (long-poll): changes arrive within a second."""
    import threading

    stop = threading.Event()
    with opened() as fb, suppress(KeyboardInterrupt):
        Puller(fb).follow(name, stop, wait_s)


@exchange_app.command("opinion")
def exchange_opinion(
    name: str,
    item: str,
    opinion: Annotated[str, typer.Option(help="false_positive or confirmed.")],
    note: Note = "",
) -> None:
    """Tell the publisher of a pulled item that it is a false positive, or confirmed."""
    with opened() as fb:
        answer = Puller(fb).send_opinion(name, item, opinion, note)
    out.print(json.dumps(answer))


@text_app.command("scan")
def text_scan(
    posts: Annotated[Path, typer.Argument(help='JSONL: one {"id": ..., "text": ...} a line.')],
    act: Annotated[
        bool,
        typer.Option(help="Act on each verdict as the rules say: hold, webhook, audit log."),
    ] = False,
    classify_all: Annotated[
        bool,
        typer.Option("--all", help="Let the classifier read posts that name no organisation."),
    ] = False,
    batch: Annotated[int, typer.Option(min=1, help="Posts the classifier reads at once.")] = 64,
) -> None:
    """One JSON line a post: the designated organisations it names (span in the original text),
    whatever the script or the disguise; its stance (support, news, counter, other) when a
    classifier is trained; the verdict; the registry version used."""
    with opened() as fb:
        try:
            desk = PostDesk(fb, scanner_for(fb, classify_all))
            with posts.open(encoding="utf-8") as lines:
                chunk: list[tuple[object, str]] = []
                for post in read_posts(lines):
                    chunk.append(post)
                    if len(chunk) >= batch:
                        _print_posts(desk, chunk, act, fb.settings.actor)
                        chunk = []
                _print_posts(desk, chunk, act, fb.settings.actor)
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"{posts}: {exc}") from None


def _print_posts(desk: PostDesk, chunk: list[tuple[object, str]], act: bool, actor: str) -> None:
    if not chunk:
        return
    lines = [o.to_json() for o in desk.scan(chunk, actor)] if act else desk.scanner.scan_many(chunk)
    for line in lines:
        print(json.dumps(line, ensure_ascii=False), flush=True)


@text_app.command("train")
def text_train(
    data: Annotated[Path, typer.Argument(help='Labelled JSONL: {"text", "label", "lang"} a line.')],
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Where the head goes (default: home/models/text-head.json)."),
    ] = None,
    eval_data: Annotated[
        Path | None, typer.Option("--eval", help="Labelled JSONL to measure it on.")
    ] = None,
) -> None:
    """Train the context classifier (support, news, counter, other) over multilingual
    sentence embeddings; the head records its training data's SHA-256 and its metrics."""
    settings = get_settings()
    target = out_path or settings.home / "models" / "text-head.json"
    embedder = TextEmbedder()
    try:
        _train_text(data, target, eval_data, embedder)
    except FirebreakError as exc:
        raise fail(str(exc)) from None


def _train_text(data: Path, target: Path, eval_data: Path | None, embedder: TextEmbedder) -> None:
    posts, sha256 = read_labelled(data)
    with out.status(f"embedding {len(posts)} posts"):
        head = train_context_head(posts, sha256, embedder)
    if eval_data is not None:
        eval_posts, eval_sha = read_labelled(eval_data)
        with out.status(f"measuring on {len(eval_posts)} posts"):
            measured = evaluate_text(ContextClassifier(head, embedder), eval_posts, eval_sha)
        head = head.with_metrics(dict(head.metrics) | {"evaluation": measured})
        for line in format_evaluation(measured):
            out.print(line, highlight=False)
    head.save(target)
    out.print(f"trained on {len(posts)} posts ({sha256[:12]}); head written to {target}")


@text_app.command("eval")
def text_eval(
    data: Annotated[Path, typer.Argument(help="Labelled JSONL to measure the classifier on.")],
    head_path: Annotated[
        Path | None, typer.Option("--head", help="The head (default: the configured one).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Precision and recall per class and per language, and the share of news and
    counter-speech wrongly labelled support."""
    settings = get_settings()
    path = head_path or settings.resolved_text_head
    if path is None:
        raise fail("no text classifier: train one with `firebreak text train`")
    try:
        classifier = ContextClassifier.load(path)
        posts, sha256 = read_labelled(data)
        with out.status(f"classifying {len(posts)} posts"):
            measured = evaluate_text(classifier, posts, sha256)
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    if json_out:
        print(json.dumps(measured, ensure_ascii=False))
        return
    for line in format_evaluation(measured):
        out.print(line, highlight=False)


@text_app.command("media")
def text_media(
    files: Annotated[list[Path], typer.Argument(help="Images or videos.")],
) -> None:
    """Names and slogans of designated organisations read on screen: one JSON line a file with
    each hit's frame time and box."""
    with opened() as fb:
        scanner = TextScanner.from_store(fb.store)
        for path in files:
            reader = ScreenReader(scanner.matcher)
            try:
                hits = reader.read_media(path, fb.settings)
            except FirebreakError as exc:
                err.print(f"{path}: {exc}")
                continue
            record = {
                "file": str(path),
                "hits": [h.to_json() for h in hits],
                "frames_read": reader.frames_read,
                "frames_seen": reader.frames_seen,
                "list_version": scanner.version,
            }
            print(json.dumps(record, ensure_ascii=False), flush=True)


@keys_app.command("create")
def keys_create(
    name: str,
    role: Annotated[str, typer.Option(help="admin, moderator, service or partner.")],
    bank: Annotated[
        list[str] | None,
        typer.Option(help="Shared banks a partner key may pull (repeatable; default: all)."),
    ] = None,
) -> None:
    """Make an API key; it is printed once and only its digest is stored."""
    with opened() as fb:
        _, key = fb.store.keys.create(name, role, fb.settings.actor, bank or None)
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """The keys: names, roles, when made, whether revoked (never the keys themselves)."""
    with opened() as fb:
        keys = fb.store.keys.list()
    table = Table("name", "role", "id", "created", "by", "revoked")
    for k in keys:
        revoked = k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else ""
        table.add_row(
            k.name,
            k.role,
            k.key_id,
            k.created_at.isoformat(timespec="seconds"),
            k.created_by,
            revoked,
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(name: str) -> None:
    """Revoke a key: every request with it is refused from now on."""
    with opened() as fb:
        fb.store.keys.revoke(name, fb.settings.actor)
    out.print(f"revoked {name}")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    access_log: Annotated[bool, typer.Option(help="Log one line per request.")] = True,
) -> None:
    """Run the HTTP API (docs at /docs) on the configured store."""
    import uvicorn

    from firebreak.api.app import create_app

    try:
        application = create_app(get_settings())
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(f"bad setting: {exc}") from None
    uvicorn.run(application, host=host, port=port, log_level="info", access_log=access_log)


@orgs_app.command("import")
def orgs_import(
    file: Path,
    fmt: Annotated[
        OrgFormat | None,
        typer.Option("--format", help="csv, json or un-xml (default: from the name, then content)"),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Designation source of every entry (e.g. UNSC, EU, platform policy)."),
    ] = None,
) -> None:
    """Import a list of designated organisations and individuals as a new registry version: it
    replaces the entries of the sources it brings and leaves other sources' alone."""
    try:
        with file.open("rb") as handle:
            data = handle.read(ORGS_MAX_BYTES + 1)
    except OSError as exc:
        raise fail(f"{file}: cannot read ({exc})") from None
    with opened() as fb:
        entries = parse_orgs(data, fmt or guess_org_format(file.name, data), file.name, source)
        outcome = fb.store.orgs.import_entries(
            entries,
            actor=fb.settings.actor,
            file_name=file.name,
            sha256=hashlib.sha256(data).hexdigest(),
            sources=[source] if source else None,
        )
    v = outcome.version
    out.print(
        f"registry version {v.version}: imported {v.entry_count} entries of {v.source} from "
        f"{file.name} ({outcome.added} added, {outcome.changed} changed, {outcome.removed} "
        f"removed, {outcome.unchanged} unchanged; sha256 {v.sha256})",
        markup=False,
        soft_wrap=True,
    )


@orgs_app.command("list")
def orgs_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The registry's current entries and its version."""
    with opened() as fb:
        version = fb.store.orgs.current_version()
        orgs = fb.store.orgs.list()
    if as_json:
        print(
            json.dumps(
                {"version": version, "entries": [o.to_json() for o in orgs]}, ensure_ascii=False
            )
        )
        return
    out.print(f"registry version {version}: {len(orgs)} entries", markup=False)
    table = Table("name", "kind", "source", "category", "designated", "aliases", "version")
    for o in orgs:
        e = o.entry
        table.add_row(
            e.name,
            e.kind,
            e.source,
            e.category,
            e.designated_on.isoformat() if e.designated_on else "",
            " | ".join(a.text for a in e.aliases),
            str(o.version),
        )
    out.print(table)


@orgs_app.command("export")
def orgs_export(
    fmt: Annotated[OrgFormat, typer.Option("--format", help="csv or json")] = OrgFormat.CSV,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Write the registry's current version (CSV or JSON); its version number goes to stderr."""
    if fmt is OrgFormat.UN_XML:
        raise fail("orgs export writes csv or json")
    with opened() as fb:
        version = fb.store.orgs.current_version()
        entries = [o.entry for o in fb.store.orgs.list()]
        text = write_json(entries) if fmt is OrgFormat.JSON else write_csv(entries)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    err.print(f"registry version {version}: {len(entries)} entries", markup=False)


@app.command("train")
def train(
    folder: Annotated[Path, typer.Argument(help="Labelled clips in attack/ and benign/.")],
    head_file: Annotated[Path, typer.Option("--out", help="Where to write the head (JSON).")],
    impulse: Annotated[bool, typer.Option(help="Use the gunfire-like impulse scorer.")] = True,
    motion: Annotated[bool, typer.Option(help="Use the camera-motion features.")] = True,
    model: Annotated[
        Path | None, typer.Option(help="An ONNX picture classifier whose output to use.")
    ] = None,
    watch_list: Annotated[Path | None, typer.Option(help="An OCR watch list to use.")] = None,
) -> None:
    """Fit a detector head on labelled clips; held-out clips measure it."""
    spec = ScorerSpec(
        impulse, motion, str(model) if model else None, str(watch_list) if watch_list else None
    )
    try:
        scorers = build_scorers(spec)
        with progress() as bar:
            task = bar.add_task("measuring clips", total=None)
            head = train_head(
                folder, scorers, spec, get_settings(), progress=lambda _: bar.advance(task)
            )
        head.save(head_file)
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    out_print_metrics(f"trained {head_file} (version {head.version})", head.metrics)
    out.print(f"trained on {dict(head.trained_on)}")


@app.command("eval")
def evaluate(
    head_file: Annotated[Path, typer.Argument(help="A head from `firebreak train`.")],
    folder: Annotated[Path, typer.Argument(help="Held-out labelled clips (attack/, benign/).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """ROC AUC, time to detect and false alerts per stream-hour of a head on labelled clips."""
    try:
        head = DetectorHead.load(head_file)
        scorers = build_scorers(head.scorers)
        with progress() as bar:
            task = bar.add_task("measuring clips", total=None)
            result = evaluate_head(
                head, folder, scorers, get_settings(), progress=lambda _: bar.advance(task)
            )
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(result.as_metrics()))
    else:
        out_print_metrics(f"{head_file} on {folder}", result.as_metrics())


def out_print_metrics(title: str, metrics: Mapping[str, float]) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:g}")
    out.print(table)


@clips_app.command("fetch")
def clips_fetch(dest: Annotated[Path, typer.Option(help="Cache folder.")]) -> None:
    """Fetch the real filmed clips into a cache folder (once)."""
    try:
        clips = fetch_real_clips(dest)
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    err.print(f"{len(clips)} real clips in {dest}", markup=False, highlight=False)


@app.command("demo")
def demo(
    clips_dir: Annotated[Path, typer.Option("--clips", help="Real clips cache.")] = Path(
        ".cache/clips"
    ),
) -> None:
    """Bank real clips, match manipulated copies and unrelated clips, and show what matched."""
    settings = get_settings()
    with opened(settings) as fb:
        clips = fetch_real_clips(clips_dir)
        err.print(f"banking {DEMO_BANK} under {settings.home} …", markup=False)
        bank_demo_clips(fb, clips)
        cases = build_demo_cases(clips, settings.home / "demo-queries")
        rows = []
        with progress() as bar:
            task = bar.add_task("matching", total=len(cases))
            for case in cases:
                rows.append(DemoRow(case, fb.match_file(case.path)))
                bar.advance(task)
    out.print(_demo_table(rows))
    right = sum(r.correct for r in rows)
    out.print(f"{right} of {len(rows)} queries got the expected verdict.", markup=False)


def _segment(segment: list[float] | None) -> str:
    return "" if segment is None else f"{segment[0]:.1f}–{segment[1]:.1f} s"


def _match_table(results: list[MatchResult]) -> Table:
    table = Table("file", "verdict", "bank", "item", "score", "query segment", "item segment")
    for result in results:
        data = result.to_json()
        matches = data["matches"]
        assert isinstance(matches, list)
        if not matches:
            table.add_row(result.file, result.verdict.value, "", "", "", "", "")
        for m in matches:
            table.add_row(
                result.file,
                result.verdict.value,
                m["bank"],
                m["item"],
                f"{m['score']:.2f}",
                _segment(m["query_segment"]),
                _segment(m["item_segment"]),
            )
    return table


def _demo_table(rows: list[DemoRow]) -> Table:
    table = Table(
        "query",
        "made by",
        "verdict",
        "matched item",
        "score",
        "query seg.",
        "item seg.",
        "ok",
        title="Firebreak: manipulated copies and unrelated clips against the demo bank",
    )
    for row in rows:
        best = row.result.to_json()["matches"]
        assert isinstance(best, list)
        top = best[0] if best else None
        table.add_row(
            row.case.name,
            row.case.how,
            row.result.verdict.value,
            top["item"] if top else "",
            f"{top['score']:.2f}" if top else "",
            _segment(top["query_segment"]) if top else "",
            _segment(top["item_segment"]) if top else "",
            "[green]yes[/green]" if row.correct else "[red]no[/red]",
        )
    return table


@bench_app.command("variants")
def bench_variants(
    sources: Annotated[
        Path | None, typer.Option(help="Folder of videos to bank (default: the real clips).")
    ] = None,
    distractors: Annotated[
        Path | None, typer.Option(help="Folder of videos never banked (default: real clips).")
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where results go.")] = Path(
        "bench/results"
    ),
    quick: Annotated[bool, typer.Option(help="A few families, one clip of each kind.")] = False,
    cache: Annotated[Path, typer.Option(help="Cache of made variants.")] = Path(
        ".cache/bench-variants"
    ),
    clips_dir: Annotated[
        Path, typer.Option("--clips", envvar="FIREBREAK_CLIPS_DIR", help="Real clips cache.")
    ] = Path(".cache/clips"),
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = 2,
) -> None:
    """Match manipulated copies of banked clips and of distractors with Firebreak, vPDQ and
    TMK+PDQF; print recall at zero false positives per manipulation family, write JSON and a chart."""
    from firebreak.bench.report import write_chart, write_json
    from firebreak.bench.suite import (
        BenchConfig,
        default_sources,
        media_files,
        run_variant_bench,
        suite_edits,
    )

    try:
        default_banked, default_distractors = (
            default_sources(clips_dir, cache, quick)
            if sources is None or distractors is None
            else ((), ())
        )
        config = BenchConfig(
            banked=media_files(sources) if sources else default_banked,
            distractors=media_files(distractors) if distractors else default_distractors,
            edits=suite_edits(quick),
            cache_dir=cache,
            settings=get_settings(),
            workers=workers,
        )
        if not config.banked or not config.distractors:
            raise fail("bench needs at least one banked and one distractor video")
        with progress() as bar:
            tasks: dict[str, TaskID] = {}

            def show(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            run = run_variant_bench(config, show)
        json_path = write_json(run, out_dir / f"variants-{run.date}.json")
        chart_path = write_chart(run, out_dir / f"variants-{run.date}.png")
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    out.print(_bench_family_table(run))
    out.print(_bench_summary_table(run))
    for name, reason in run.failed_variants.items():
        err.print(f"firebreak: variant not made: {name}: {reason}", markup=False, highlight=False)
    t = run.timing
    out.print(
        f"{len(run.outcomes)} variants of {len(run.banked)} banked and {len(run.distractors)} "
        f"distractor clips in {t.total_s:.0f} s (making {t.making_variants_s:.0f} s, banking "
        f"{t.banking_s:.0f} s, matching {t.matching_s:.0f} s); wrote {json_path} and {chart_path}",
        markup=False,
        highlight=False,
    )


@bench_app.command("speed")
def bench_speed(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Videos to time (default: a 10-minute 720p clip).")
    ] = None,
    cache: Annotated[Path, typer.Option(help="Where the made clip is kept.")] = Path(
        ".cache/bench-speed"
    ),
    minutes: Annotated[float, typer.Option(help="Length of the made clip.")] = 10.0,
    repeats: Annotated[int, typer.Option(min=1, help="Best of this many runs.")] = 2,
) -> None:
    """Time hashing against `ffmpeg -i FILE -f null -` on the same files, side by side, with the
    peak memory of each hashing run."""
    from firebreak.bench.speed import make_long_clip, measure_hashing_speed
    from firebreak.media import probe_media

    try:
        targets = files or [make_long_clip(cache / f"testsrc2-720p-{minutes:g}min.mp4", minutes)]
        results = [
            measure_hashing_speed(path, probe_media(path, get_settings()).duration_s, repeats)
            for path in targets
        ]
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    table = Table(
        "file",
        "length",
        "ffmpeg decode",
        "query hash",
        "× decode",
        "peak RSS",
        "bank hash",
        "× decode",
        "peak RSS",
        title="Hashing cost against ffmpeg decode-only on the same file",
    )
    for r in results:
        table.add_row(
            Path(r.file).name,
            f"{r.duration_s:.0f} s",
            f"{r.ffmpeg_decode_s:.1f} s",
            f"{r.query_hash_s:.1f} s",
            f"{r.query_ratio:.2f}",
            f"{r.query_peak_rss_mb:.0f} MB",
            f"{r.bank_hash_s:.1f} s",
            f"{r.bank_ratio:.2f}",
            f"{r.bank_peak_rss_mb:.0f} MB",
        )
    out.print(table)


@bench_app.command("live")
def bench_live(
    clips_dir: Annotated[
        Path, typer.Option("--clips", envvar="FIREBREAK_CLIPS_DIR", help="Real clips cache.")
    ] = Path(".cache/clips"),
    cache: Annotated[Path, typer.Option(help="Where made streams and homes are kept.")] = Path(
        ".cache/bench-live"
    ),
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write live-<date>.json into this folder.")
    ] = None,
    cases: Annotated[int, typer.Option(min=1, help="Spliced streams in the latency run.")] = 12,
) -> None:
    """Publish streams with banked clips spliced in over a local nginx-rtmp server and time the
    alerts; then find how many live streams one CPU core keeps up with."""
    from dataclasses import asdict

    from firebreak.bench.live import measure_live_latency, measure_streams_per_core
    from firebreak.bench.rtmp_server import rtmp_server_available

    if not rtmp_server_available():
        raise fail("bench live needs nginx with its RTMP module (libnginx-mod-rtmp)")
    try:
        fetch_real_clips(clips_dir)
        latency = measure_live_latency(clips_dir, cache, cases)
        for line in latency.lines():
            out.print(line, markup=False, highlight=False)
        per_core = measure_streams_per_core(cache)
        for line in per_core.lines():
            out.print(line, markup=False, highlight=False)
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    if out_dir is not None:
        path = out_dir / f"live-{latency.date}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        report = {"latency": asdict(latency), "streams_per_core": asdict(per_core)}
        path.write_text(json.dumps(report, indent=1) + "\n")
        out.print(f"wrote {path}", markup=False, highlight=False)


@bench_app.command("index")
def bench_index(
    sizes: Annotated[str, typer.Option(help="Comma-separated bank sizes.")] = "1000000,10000000",
    queries: Annotated[int, typer.Option(min=10, help="Queries a workload.")] = 2000,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Write index-<date>.json into this folder.")
    ] = Path("bench/results"),
) -> None:
    """The matcher's index at scale: Firebreak's multi-index hashing beside faiss's flat and
    multi-hash indices (build time, memory, p50/p99 query time, recall) on random and
    clustered codes, radius 31."""
    from firebreak.bench.index_scale import format_report, run_index_bench

    def note(message: str) -> None:
        err.print(message, markup=False, highlight=False)

    try:
        chosen = tuple(int(s) for s in sizes.split(","))
    except ValueError:
        raise fail(f"--sizes must be comma-separated numbers, not {sizes!r}") from None
    try:
        report = run_index_bench(sizes=chosen, queries=queries, out_dir=out_dir, progress=note)
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    out.print(format_report(report), markup=False, highlight=False)


@bench_app.command("text")
def bench_text(
    train: Annotated[
        Path | None, typer.Option(help="Labelled JSONL to train the classifier on.")
    ] = None,
    evaluation: Annotated[
        Path | None, typer.Option("--eval", help="Labelled JSONL to measure it on.")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Write text-<date>.json into this folder.")
    ] = Path("bench/results"),
) -> None:
    """Posts a second: lexical matching with 10,000 aliases on one core, and the context
    classifier on one thread and on every core; with labelled data, its per-language figures."""
    from firebreak.bench.text import run_text_bench

    try:
        with out.status("measuring"):
            report = run_text_bench(out_dir, train, evaluation)
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    m = report["machine"]
    out.print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}", highlight=False)
    out.print(
        f"lexical: {report['lexical']['posts_per_s_one_core']:,} posts/s on one core "
        f"with {report['lexical']['aliases']:,} aliases",
        highlight=False,
    )
    for threads, rate in report["classifier"]["posts_per_s"].items():
        n = int(threads.split("_")[0])
        out.print(f"classifier: {rate} posts/s on {n} thread{'s' * (n > 1)}", highlight=False)
    if "cross_lingual" in report:
        trained = ", ".join(report["cross_lingual"]["trained_on"]["languages"])
        out.print(f"classifier trained on {trained}; measured:", highlight=False)
        for line in format_evaluation(report["cross_lingual"]["evaluation"]):
            out.print(line, highlight=False)
    out.print(f"written to {report['path']}", highlight=False)


@bench_app.command("sweep")
def bench_sweep_command(
    uploads: Annotated[
        int, typer.Option(min=1, help="Stored uploads in the synthetic catalogue.")
    ] = 1_000_000,
    items: Annotated[
        int, typer.Option(min=1, help="Banked items, two copies of each planted.")
    ] = 20,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes of the local cluster.")] = 2,
    scheduler: Annotated[
        str | None, typer.Option(help="A Dask scheduler (tcp://host:port) instead.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The result as JSON.")] = False,
) -> None:
    """Retroactive sweep: throughput over a synthetic catalogue of stored hashes, and whether
    every planted copy was found."""
    import tempfile

    from firebreak.scale.sweep import SweepProgress, bench_sweep

    with (
        tempfile.TemporaryDirectory(prefix="firebreak-bench-sweep-") as scratch,
        progress() as bar,
    ):
        task = bar.add_task("sweeping", total=None)

        def show(p: SweepProgress) -> None:
            bar.update(task, total=p.partitions, completed=p.partitions_done)

        result = bench_sweep(
            Path(scratch),
            uploads,
            items=items,
            workers=workers,
            scheduler=scheduler,
            progress=show,
        )
    if as_json:
        print(json.dumps(result.to_json()), flush=True)
        return
    s = result.summary
    out.print(
        f"sweep of {result.uploads:,} stored uploads ({result.catalogue_bytes / 1e6:,.0f} MB) on "
        f"{workers if scheduler is None else 'the given'} workers: {s.items_per_s:,.0f} "
        f"uploads/s ({s.scan_s:.1f} s; cluster start and index {s.startup_s:.1f} s); found "
        f"{result.found} of {result.planted} planted copies, {result.false_matches} false matches",
        markup=False,
        highlight=False,
    )


@bench_app.command("api")
def bench_api(
    minutes: Annotated[float, typer.Option(min=0.01, help="Measured minutes of lookups.")] = 2.0,
    codes: Annotated[int, typer.Option(min=1, help="Random PDQ codes in the bank.")] = 100_000,
    clients: Annotated[int, typer.Option(min=1, help="Client threads (keep-alive).")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the banked codes and the lookups.")] = 0,
    cache: Annotated[Path, typer.Option(help="Where the bench home is kept.")] = Path(
        ".cache/bench-api"
    ),
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write api-<date>.json into this folder.")
    ] = None,
) -> None:
    """Load-test the HTTP API on loopback: `firebreak serve` over a bank of random PDQ codes,
    hash lookups from keep-alive clients; lookups per second and per server CPU-second, latency
    percentiles and the server's memory over the run. Fails on any failed request."""
    from firebreak.bench.api import run_api_bench

    def note(message: str) -> None:
        err.print(message, markup=False, highlight=False)

    try:
        report = run_api_bench(
            cache, seconds=60 * minutes, codes=codes, clients=clients, seed=seed, log=note
        )
    except FirebreakError as exc:
        raise fail(str(exc)) from None
    table = Table("figure", "value", title="HTTP API lookups on loopback")
    for name, value in report.rows():
        table.add_row(name, value)
    out.print(table)
    if out_dir is not None:
        path = out_dir / f"api-{report.date}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.to_json(), indent=1) + "\n")
        out.print(f"wrote {path}", markup=False, highlight=False)
    if report.errors:
        raise fail(f"{report.errors} requests failed: {'; '.join(report.error_samples)}")


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _bench_family_table(run: BenchRun) -> Table:
    table = Table(
        "family",
        "positives",
        *run.systems,
        title="Recall at zero false positives\n(one threshold per system: its best-scoring negative)",
    )
    summaries = run.summaries
    for family in run.families:
        if family not in summaries[0].recall_by_family:
            continue
        count = sum(1 for o in run.outcomes if o.positive and o.family == family)
        table.add_row(family, str(count), *(_pct(s.recall_by_family[family]) for s in summaries))
    table.add_section()
    table.add_row(
        "overall", str(summaries[0].positives), *(_pct(s.recall_at_zero_fp) for s in summaries)
    )
    return table


def _bench_summary_table(run: BenchRun) -> Table:
    table = Table(
        "system",
        "zero-FP threshold",
        "recall at default",
        "FP at default",
        "segments within 1 s",
        "mean segment error",
        "s / variant",
        title="At each system's default rule; segment accuracy on excerpts and compilations",
    )
    for s in run.summaries:
        seg = s.segments
        table.add_row(
            s.system,
            f"{s.zero_fp_threshold:.3f}",
            _pct(s.recall_at_default),
            f"{s.false_positives_at_default} of {s.negatives}",
            f"{_pct(seg.within_tolerance)} of {seg.variants}" if seg else "—",
            f"{seg.mean_error_s:.2f} s" if seg and seg.mean_error_s is not None else "—",
            f"{s.mean_seconds_per_variant:.2f}",
        )
    return table


if __name__ == "__main__":
    app()
