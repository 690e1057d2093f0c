"""The ``plexus`` command: scorecards, training, evaluation and scoring from a terminal."""

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from plexus_dagster.evaluations.analysis import METRIC_NAMES
from plexus_dagster.scorecards.loader import (
    Scorecard,
    ScorecardCatalog,
    ScorecardError,
    catalog_scorecards,
    load_scorecards,
    scorecard_files,
)
from plexus_dagster.settings import get_settings
from plexus_dagster.sources.models import SourceConfigError, label_fields, load_sources

app = typer.Typer(
    help="Score conversations with scorecards and measure them against human labels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
scorecards_app = typer.Typer(help="List and validate scorecards.", no_args_is_help=True)
app.add_typer(scorecards_app, name="scorecards")

# Markup is off: messages hold user text such as regular expressions with square brackets.
out = Console(markup=False, highlight=False)
if not out.is_terminal:
    # Piped output is read by people too: keep the metrics table on one line per score.
    out = Console(markup=False, highlight=False, width=140)
err = Console(stderr=True, markup=False, highlight=False)


AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(Text.assemble(("error: ", "red"), message), soft_wrap=True)
    return typer.Exit(code)


def _known_sources() -> dict[str, list[str]]:
    try:
        return label_fields(load_sources(get_settings().sources_dir))
    except SourceConfigError as e:
        raise _fail(f"the source files are invalid:\n{e}") from e


def _catalog() -> ScorecardCatalog:
    files = scorecard_files(get_settings().scorecards_dir)
    return catalog_scorecards(files, known_sources=_known_sources())


def _warn_broken(catalog: ScorecardCatalog) -> None:
    if catalog.errors:
        files = sorted({str(problem.path) for problem in catalog.errors})
        err.print(
            f"warning: {len(files)} scorecard file(s) are invalid and were left out: "
            f"{', '.join(files)}. `plexus scorecards validate` lists the problems.",
            style="yellow",
        )


def _scorecard(key: str) -> tuple[Scorecard, dict[str, Scorecard]]:
    """The valid scorecard ``key`` and every valid scorecard; exits 2 when it cannot run."""
    catalog = _catalog()
    try:
        chosen = catalog.find(key)
    except ScorecardError as e:
        raise _fail(f"scorecard {key!r} is invalid; fix it before running:\n{e}") from e
    except KeyError as e:
        raise _fail(str(e.args[0])) from e
    _warn_broken(catalog)
    return chosen, catalog.scorecards


@scorecards_app.command("list")
def scorecards_list(as_json: AsJson = False) -> None:
    """List the scorecards of the scorecards folder, and the files that are invalid."""
    catalog = _catalog()
    rows: list[dict[str, Any]] = [
        {
            "key": s.key,
            "name": s.config.name,
            "source": s.config.source,
            "train_source": s.config.train_source,
            "scores": [score.key for score in s.config.scores],
            "path": str(s.path),
            "valid": True,
        }
        for s in catalog.scorecards.values()
    ]
    problems: dict[str, list[str]] = {}
    for problem in catalog.errors:
        problems.setdefault(str(problem.path), []).append(str(problem))
    for path, messages in problems.items():
        rows.append({"path": path, "valid": False, "problems": messages})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("key", "name", "source", "train source", "scores", "file")
    for row in rows:
        if row["valid"]:
            cells = [row["key"], row["name"], row["source"], row["train_source"] or ""]
            table.add_row(*cells, str(len(row["scores"])), row["path"])
        else:
            count = len(row["problems"])
            table.add_row("", f"invalid: {count} problem(s)", "", "", "", row["path"])
    out.print(table)
    if problems:
        out.print("`plexus scorecards validate` lists the problems of the invalid files.")


@scorecards_app.command("validate")
def scorecards_validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Scorecard files or folders; the scorecards folder by default."),
    ] = None,
) -> None:
    """Check scorecards; print every problem with its file and line, exit 1 if there is one."""
    targets = paths or [get_settings().scorecards_dir]
    files = scorecard_files(*targets)
    if not files:
        raise _fail(f"no scorecard files (*.yaml, *.yml) in {', '.join(map(str, targets))}", 1)
    try:
        scorecards = load_scorecards(files, known_sources=_known_sources())
    except ScorecardError as e:
        for problem in e.errors:
            err.print(str(problem), soft_wrap=True)
        err.print(f"{len(e.errors)} problem(s) found.", style="red")
        raise typer.Exit(1) from e
    for scorecard in scorecards.values():
        out.print(f"{scorecard.path}: scorecard '{scorecard.key}' is valid")


@scorecards_app.command("register")
def scorecards_register() -> None:
    """Register every valid scorecard as a partition of the evaluation and training jobs.

    The other commands do this themselves; run it before `dagster job execute` or the UI.
    """
    from plexus_dagster.scorecards.partitions import register_scorecards

    catalog = _catalog()
    _warn_broken(catalog)
    keys = sorted(catalog.scorecards)
    added = register_scorecards(_instance(), keys)
    out.print(f"Scorecard partitions: {', '.join(keys)}; new: {len(added)}.")


def _instance() -> Any:
    from plexus_dagster.instance import project_instance

    return project_instance()


def _runner() -> Any:
    # Dagster is imported here, not at the top, so that `plexus scorecards` stays quick.
    import atexit

    from dagster._core.run_coordinator import QueuedRunCoordinator

    from plexus_dagster.definitions import defs
    from plexus_dagster.tasks.launch import Launcher, LocalProcessLauncher
    from plexus_dagster.tasks.runs import TaskRunner
    from plexus_dagster.tasks.watch import watch
    from plexus_dagster.workers.submit import QueuedLauncher

    instance = _instance()
    launcher: Launcher
    if isinstance(instance.run_coordinator, QueuedRunCoordinator):
        # A deployment with a daemon: tasks are queued and start where they can run.
        queued = QueuedLauncher(instance)
        atexit.register(queued.close)
        launcher = queued
    else:
        launcher = LocalProcessLauncher(instance)

    def announce(message: str) -> None:
        err.print(message)

    def follow(reader: Any) -> Any:
        err.print(f"Task {reader.run_id} ({reader.view.run.job_name}) started.")
        return watch(reader, err)

    return TaskRunner(defs, instance, launcher=launcher, follow=follow, announce=announce)


HEADERS = {
    "accuracy": "acc",
    "precision": "prec",
    "recall": "rec",
    "f1": "F1",
    "ac1": "AC1",
    "kappa": "kappa",
}


def _metrics_table(summary: dict[str, Any]) -> Table:
    items = f"{summary['items']} items"
    if summary.get("sample_size") and summary["items"] < summary.get("population", 0):
        items += f" (a sample of {summary['population']}, seed {summary['seed']})"
    table = Table(
        title=f"Scorecard '{summary['scorecard']}' on {items}",
        caption="yes/no scores: figures of 'yes'; other scores: macro averages",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("score", overflow="fold")
    for name in METRIC_NAMES:
        table.add_column(HEADERS[name], justify="right", no_wrap=True)
    for header in ("eval", "skip", "err"):
        table.add_column(header, justify="right", no_wrap=True)
    for key, figures in summary["scores"].items():
        metrics = [
            "-" if figures[name] is None else f"{figures[name]:.3f}" for name in METRIC_NAMES
        ]
        counts = [str(figures[name]) for name in ("evaluated", "skipped", "errors")]
        table.add_row(key, *metrics, *counts)
    return table


ScorecardOption = Annotated[str, typer.Option("--scorecard", "-s", help="Scorecard key.")]
Wait = Annotated[
    bool,
    typer.Option("--wait", "-w", help="Watch the task until it ends; otherwise print its ID."),
]


def _submitted(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"task_id": result.run_id, "job": result.job}))
    else:
        out.print(
            f"Task {result.run_id} submitted. Watch it with: plexus tasks watch {result.run_id}",
        )


@app.command()
def train(scorecard: ScorecardOption, wait: Wait = False, as_json: AsJson = False) -> None:
    """Train the trained scores of a scorecard, as a task in the project's instance."""
    from plexus_dagster.tasks.launch import LaunchError
    from plexus_dagster.tasks.runs import TaskFailed

    chosen, scorecards = _scorecard(scorecard)
    runner = _runner()
    runner.register(scorecards)
    try:
        result = runner.train(chosen, wait=wait)
    except (TaskFailed, LaunchError) as e:
        raise _fail(str(e), code=1) from e
    if not result.finished:
        _submitted(result, as_json)
        return
    versions = result.metadata.get("plexus/model_versions") or {}
    if not versions and not as_json:
        out.print(f"Task {result.run_id}: scorecard '{chosen.key}' has no trained scores.")
        return
    if as_json:
        print(json.dumps({"task_id": result.run_id, "model_versions": versions}))
        return
    out.print(f"Task {result.run_id}: trained {len(versions)} score(s) of '{chosen.key}'.")
    for key, version in versions.items():
        out.print(f"  {key}: version {version}")


@app.command()
def evaluate(
    scorecard: ScorecardOption,
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="Evaluate this many random items.")
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the sample.")
    ] = 0,
    max_error_share: Annotated[
        float,
        typer.Option("--max-error-share", min=0.0, max=1.0, help="Share of items allowed to fail."),
    ] = 0.1,
    wait: Wait = False,
    as_json: AsJson = False,
) -> None:
    """Evaluate a scorecard against human labels, as a task in the project's instance.

    Loads the items and trains the scorecard first when that has not been done yet (those tasks
    are waited for). With --wait, watches the evaluation and prints its metrics (or, with
    --json, the whole summary).
    """
    from plexus_dagster.tasks.launch import LaunchError
    from plexus_dagster.tasks.runs import TaskFailed

    chosen, scorecards = _scorecard(scorecard)
    if sample is None and seed != 0:
        err.print("--seed has no effect without --sample; evaluating every item.")
    runner = _runner()
    runner.register(scorecards)
    try:
        result, summary = runner.evaluate(
            chosen,
            sample_size=sample,
            seed=seed,
            options={"max_error_share": max_error_share},
            wait=wait,
        )
    except (TaskFailed, LaunchError) as e:
        raise _fail(str(e), code=1) from e
    if summary is None:
        _submitted(result, as_json)
        return
    if as_json:
        print(json.dumps(summary))
        return
    out.print(_metrics_table(summary))
    out.print(f"Task {result.run_id}.")
    out.print(f"Per-item results: {summary['results_path']}", soft_wrap=True)


@app.command()
def predict(
    scorecard: ScorecardOption,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Source to score; the scorecard's own by default."),
    ] = None,
    text: Annotated[
        str | None,
        typer.Option("--text", "-t", help="Score this one text here, without a task."),
    ] = None,
    max_error_share: Annotated[
        float,
        typer.Option("--max-error-share", min=0.0, max=1.0, help="Share of items allowed to fail."),
    ] = 0.1,
    wait: Wait = False,
    as_json: AsJson = False,
) -> None:
    """Score the items of a source with a scorecard, or one text with --text.

    The items are scored as a task: items already scored with the current models are left as
    they are, so a source that grows has only its new items scored. The task loads the items and
    trains the scorecard first when that has not been done yet. With --wait, prints how many items
    were scored, skipped as already scored and failed, and where the predictions are.

    With --text, the text is scored in this process, with no task, and each score's answer is
    printed; the scorecard's trained scores must have been trained.
    """
    chosen, scorecards = _scorecard(scorecard)
    if text is not None:
        if source is not None or wait:
            raise _fail("--text scores one text in this process; leave out --source and --wait")
        if not text.strip():
            raise _fail("--text is empty; give the text to score")
        _predict_text(chosen, text, as_json)
        return
    if source is not None and source not in _known_sources():
        known = ", ".join(sorted(_known_sources())) or "none"
        raise _fail(f"unknown source {source!r}; declared sources: {known}")
    _predict_source(chosen, scorecards, source, max_error_share, wait, as_json)


def _predict_source(
    chosen: Scorecard,
    scorecards: dict[str, Scorecard],
    source: str | None,
    max_error_share: float,
    wait: bool,
    as_json: bool,
) -> None:
    from plexus_dagster.tasks.launch import LaunchError
    from plexus_dagster.tasks.runs import TaskFailed

    runner = _runner()
    runner.register(scorecards)
    try:
        result = runner.predict(
            chosen, source=source, options={"max_error_share": max_error_share}, wait=wait
        )
    except (TaskFailed, LaunchError) as e:
        raise _fail(str(e), code=1) from e
    if not result.finished:
        _submitted(result, as_json)
        return
    metadata = result.metadata
    summary = {
        "task_id": result.run_id,
        "scorecard": chosen.key,
        "source": metadata["plexus/source"],
        "items": metadata["plexus/items"],
        "new_items": metadata["plexus/new_items"],
        "rescored_items": metadata["plexus/rescored_items"],
        "already_scored": metadata["plexus/already_scored"],
        "failed_items": metadata["plexus/failed_items"],
        "results_path": metadata["plexus/results_path"],
        "rows": metadata["dagster/row_count"],
        "model_versions": metadata["plexus/model_versions"],
    }
    if as_json:
        print(json.dumps(summary))
        return
    scored = summary["new_items"] + summary["rescored_items"] - summary["failed_items"]
    out.print(
        f"Task {result.run_id}: scored {scored} of the {summary['items']} items of "
        f"'{summary['source']}' with scorecard '{chosen.key}' ({summary['new_items']} new, "
        f"{summary['rescored_items']} out of date); {summary['already_scored']} skipped as "
        f"already scored; {summary['failed_items']} failed.",
        soft_wrap=True,
    )
    out.print(f"Predictions ({summary['rows']} rows): {summary['results_path']}", soft_wrap=True)


def _predict_text(chosen: Scorecard, text: str, as_json: bool) -> None:
    from plexus_dagster.evaluations.scoring import MissingModelError
    from plexus_dagster.predictions.text import load_scorecard, score_text

    try:
        loaded = load_scorecard(chosen.config, get_settings())
    except MissingModelError as e:
        raise _fail(str(e), code=1) from e
    scored = score_text(loaded, text)
    timing = {"load": round(loaded.load_seconds, 4), "predict": round(scored.seconds, 4)}
    if as_json:
        document = {
            "scorecard": chosen.key,
            "text": text,
            "scores": scored.answers,
            "model_versions": loaded.versions,
            "seconds": timing,
        }
        print(json.dumps(document))
    else:
        table = Table("score", "value", "confidence", "explanation", box=box.SIMPLE_HEAD)
        for key, answer in scored.answers.items():
            confidence = answer["confidence"]
            shown = "" if confidence is None else f"{confidence:.2f}"
            table.add_row(key, answer["value"], shown, answer["explanation"])
        out.print(table)
        err.print(
            f"Loaded {len(loaded.scores)} scores in {timing['load']:.2f} s; "
            f"scored the text in {timing['predict'] * 1000:.1f} ms."
        )
    if scored.errors.count:
        raise typer.Exit(1)


tasks_app = typer.Typer(help="List, show, watch and cancel tasks.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
TaskId = Annotated[str, typer.Argument(help="Task ID, or an unambiguous start of one.")]


def _reader(task_id: str) -> Any:
    from plexus_dagster.tasks.reading import TaskNotFound, TaskReader, resolve_task_id

    instance = _instance()
    try:
        return TaskReader(instance, resolve_task_id(instance, task_id))
    except (TaskNotFound, LookupError) as e:
        raise _fail(str(e)) from e


@tasks_app.command("list")
def tasks_list(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Only tasks with this status (repeatable), e.g. STARTED."),
    ] = None,
    job: Annotated[str | None, typer.Option("--job", help="Only tasks of this job.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many, newest first.")] = 20,
    as_json: AsJson = False,
) -> None:
    """List tasks, newest first, with their live stage and progress."""
    import dagster as dg

    from plexus_dagster.tasks.reading import list_tasks

    statuses = []
    for name in status or []:
        try:
            statuses.append(dg.DagsterRunStatus(name.upper()))
        except ValueError as e:
            known = ", ".join(s.value for s in dg.DagsterRunStatus)
            raise _fail(f"unknown status {name!r}; known: {known}") from e
    rows = list_tasks(_instance(), statuses=statuses, job=job, limit=limit)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("id", "status", "job", "partition", "stage", "%", "ETA", "worker", "created")
    for row in rows:
        table.add_row(
            row["id"],
            row["status"],
            row["job"],
            row["partition"] or "",
            row["waiting"] or row["stage"] or "",
            "" if row["percent"] is None else f"{row['percent']:.0f}",
            row["eta"] or "",
            row["worker"] or "",
            row["created"] or "",
        )
    out.print(table)


@tasks_app.command("show")
def tasks_show(task_id: TaskId, as_json: AsJson = False) -> None:
    """Show a task: its stages, resource usage, error and results."""
    from plexus_dagster.tasks.watch import resources_line

    view = _reader(task_id).poll()
    document = view.to_dict()
    if as_json:
        print(json.dumps(document))
        return
    out.print(
        f"Task {document['id']}  {document['status']}  job {document['job']}"
        f"{'  partition ' + document['partition'] if document['partition'] else ''}",
        highlight=False,
    )
    out.print(
        f"created {document['created']}  started {document['started']}  ended {document['ended']}",
        highlight=False,
    )
    placement = [
        f"needs {document['needs'] or 'nothing'}" if document["needs"] is not None else "",
        f"worker {document['worker']}" if document["worker"] else "",
        document["waiting"] or "",
    ]
    if any(placement):
        out.print("  ".join(part for part in placement if part), highlight=False)
    table = Table("stage", "status", "done", "total", "%", "rate/s", "ETA s", "message")
    for stage in document["stages"]:
        table.add_row(
            stage["name"],
            stage["status"],
            str(stage["processed"]),
            "" if stage["total"] is None else str(stage["total"]),
            "" if stage["percent"] is None else f"{stage['percent']:.1f}",
            "" if stage["items_per_second"] is None else f"{stage['items_per_second']:,.1f}",
            "" if stage["eta_seconds"] is None else f"{stage['eta_seconds']:.0f}",
            stage["message"] or "",
        )
    out.print(table)
    out.print(resources_line(document["resources"]))
    if document["error"]:
        error = document["error"]
        out.print(
            f"error in stage {error.get('stage')!r} after {error.get('processed')} "
            f"items, item {error.get('item_id')!r}: {error['message']}",
        )
    for name, values in document["results"].items():
        if name == "materializations":
            for asset, metadata in values.items():
                out.print(f"materialized {asset}:")
                for label, value in metadata.items():
                    shown = f"table of {len(value)} rows" if isinstance(value, list) else value
                    out.print(f"  {label}: {shown}", highlight=False)
        else:
            out.print(f"results of {name}: {json.dumps(values, default=str)[:2000]}")
    if document["results"].get("materializations"):
        out.print("(--json prints the tables)")


@tasks_app.command("watch")
def tasks_watch(task_id: TaskId) -> None:
    """Draw a task's progress until it ends; exit 1 unless it succeeded."""
    from plexus_dagster.tasks.watch import watch

    view = watch(_reader(task_id), out)
    out.print(f"Task {view.id} ended {view.status.value}.")
    if view.status.value != "SUCCESS":
        raise typer.Exit(1)


@tasks_app.command("logs")
def tasks_logs(
    task_id: TaskId,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until it ends.")
    ] = False,
) -> None:
    """Print a task's log lines."""
    import time
    from datetime import UTC, datetime

    reader = _reader(task_id)
    printed = 0
    while True:
        view = reader.poll()
        for line in reader.lines[printed:]:
            moment = datetime.fromtimestamp(line.timestamp, UTC).strftime("%H:%M:%S")
            step = f" [{line.step}]" if line.step else ""
            out.print(f"{moment} {line.level:<7}{step} {line.text}")
        printed = len(reader.lines)
        if not follow or view.finished:
            break
        time.sleep(0.5)


@tasks_app.command("cancel")
def tasks_cancel(task_id: TaskId) -> None:
    """Cancel a task; it ends CANCELED."""
    from plexus_dagster.tasks.launch import cancel_task

    reader = _reader(task_id)
    out.print(cancel_task(reader.instance, reader.run_id))


worker_app = typer.Typer(help="Run a worker daemon on this machine.", no_args_is_help=True)
app.add_typer(worker_app, name="worker")
workers_app = typer.Typer(help="See the live worker daemons.", no_args_is_help=True)
app.add_typer(workers_app, name="workers")


@worker_app.command("start")
def worker_start(
    capabilities: Annotated[
        str,
        typer.Option(
            "--capabilities",
            help="Comma-separated capabilities besides detected GPUs, e.g. gpu,data:banking77.",
        ),
    ] = "",
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="How many tasks at once.")
    ] = 1,
    name: Annotated[
        str | None, typer.Option("--name", help="Worker name, unique among live workers.")
    ] = None,
) -> None:
    """Start a worker daemon that runs every task whose needs its capabilities cover.

    It serves the instance of DAGSTER_HOME, which must use the worker deployment's dagster.yaml
    (deploy/workers/dagster.yaml); it runs until stopped with Ctrl-C or SIGTERM.
    """
    from plexus_dagster.workers.daemon import start_worker
    from plexus_dagster.workers.requirements import RequirementError

    logging.getLogger("plexus_dagster").setLevel(logging.INFO)
    wanted = [part.strip() for part in capabilities.split(",") if part.strip()]
    try:
        start_worker(name=name, capabilities=wanted, concurrency=concurrency)
    except (RequirementError, RuntimeError) as e:
        raise _fail(str(e)) from e


@workers_app.command("list")
def workers_list(as_json: AsJson = False) -> None:
    """List the live worker daemons with their capabilities and running tasks."""
    from plexus_dagster.workers.daemon import worker_launcher
    from plexus_dagster.workers.status import worker_rows

    instance = _instance()
    try:
        launcher = worker_launcher(instance)
    except RuntimeError as e:
        raise _fail(str(e)) from e
    rows = worker_rows(instance, launcher.registry)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("name", "host", "capabilities", "slots", "running", "heartbeat")
    for row in rows:
        table.add_row(
            row["name"],
            row["host"],
            ", ".join(row["capabilities"]) or "-",
            f"{len(row['running'])}/{row['concurrency']}",
            ", ".join(run_id[:8] for run_id in row["running"]) or "-",
            f"{row['heartbeat_age']:.0f} s ago",
        )
    out.print(table if rows else "No live workers.")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    app()


if __name__ == "__main__":
    main()
