"""The ``plexus`` command: scorecards, training and evaluation from a terminal."""

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from plexus_dagster.evaluations.analysis import METRIC_NAMES
from plexus_dagster.scorecards.loader import (
    Scorecard,
    ScorecardError,
    load_scorecards,
    scorecard_files,
)
from plexus_dagster.settings import get_settings
from plexus_dagster.sources.models import SourceConfigError, load_sources

app = typer.Typer(
    help="Score conversations with scorecards and measure them against human labels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
scorecards_app = typer.Typer(help="List and validate scorecards.", no_args_is_help=True)
app.add_typer(scorecards_app, name="scorecards")

out = Console()
if not out.is_terminal:
    # Piped output is read by people too: keep the metrics table on one line per score.
    out = Console(width=140)
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _known_sources() -> set[str]:
    try:
        return set(load_sources(get_settings().sources_dir))
    except SourceConfigError as e:
        raise _fail(f"the source files are invalid:\n{e}") from e


def _all_scorecards() -> dict[str, Scorecard]:
    files = scorecard_files(get_settings().scorecards_dir)
    try:
        return load_scorecards(files, known_sources=_known_sources())
    except ScorecardError as e:
        raise _fail(f"scorecards are invalid; fix them before running:\n{e}") from e


def _scorecard(key: str) -> tuple[Scorecard, dict[str, Scorecard]]:
    scorecards = _all_scorecards()
    if key not in scorecards:
        known = ", ".join(sorted(scorecards)) or "none"
        raise _fail(f"unknown scorecard {key!r}; known scorecards: {known}")
    return scorecards[key], scorecards


@scorecards_app.command("list")
def scorecards_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the scorecards of the scorecards folder."""
    scorecards = _all_scorecards()
    rows = [
        {
            "key": s.key,
            "name": s.config.name,
            "source": s.config.source,
            "train_source": s.config.train_source,
            "scores": [score.key for score in s.config.scores],
            "path": str(s.path),
        }
        for s in scorecards.values()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("key", "name", "source", "train source", "scores")
    for s in scorecards.values():
        config = s.config
        train_source = config.train_source or ""
        table.add_row(s.key, config.name, config.source, train_source, str(len(config.scores)))
    out.print(table)


@scorecards_app.command("validate")
def scorecards_validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Scorecard files or folders; the scorecards folder by default."),
    ] = None,
) -> None:
    """Check scorecards; print every problem with its file and line, exit 1 if there is one."""
    targets = paths or [get_settings().scorecards_dir]
    files = [file for target in targets for file in scorecard_files(target)]
    try:
        scorecards = load_scorecards(files, known_sources=_known_sources())
    except ScorecardError as e:
        for problem in e.errors:
            err.print(str(problem), highlight=False, soft_wrap=True)
        err.print(f"[red]{len(e.errors)} problem(s) found.[/red]")
        raise typer.Exit(1) from e
    for scorecard in scorecards.values():
        out.print(f"{scorecard.path}: scorecard '{scorecard.key}' is valid", highlight=False)


@scorecards_app.command("register")
def scorecards_register() -> None:
    """Register every valid scorecard as a partition of the evaluation and training jobs.

    The other commands do this themselves; run it before `dagster job execute` or the UI.
    """
    from plexus_dagster.instance import project_instance
    from plexus_dagster.scorecards.partitions import register_scorecards

    scorecards = _all_scorecards()
    added = register_scorecards(project_instance(), sorted(scorecards))
    out.print(f"Scorecard partitions: {', '.join(sorted(scorecards))}; new: {len(added)}.")


def _instance() -> Any:
    from plexus_dagster.instance import project_instance

    return project_instance()


def _runner() -> Any:
    # Dagster is imported here, not at the top, so that `plexus scorecards` stays quick.
    from plexus_dagster.definitions import defs
    from plexus_dagster.tasks.launch import LocalProcessLauncher
    from plexus_dagster.tasks.runs import TaskRunner
    from plexus_dagster.tasks.watch import watch

    instance = _instance()

    def announce(message: str) -> None:
        err.print(message, highlight=False)

    def follow(reader: Any) -> Any:
        err.print(f"Task {reader.run_id} ({reader.view.run.job_name}) started.", highlight=False)
        return watch(reader, err)

    return TaskRunner(
        defs, instance, launcher=LocalProcessLauncher(instance), follow=follow, announce=announce
    )


def _metrics_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"Scorecard '{summary['scorecard']}' on {summary['items']} items")
    table.add_column("score", no_wrap=True)
    for name in (*METRIC_NAMES, "evaluated", "skipped", "errors"):
        table.add_column(name, justify="right")
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
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _submitted(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"task_id": result.run_id, "job": result.job}))
    else:
        out.print(
            f"Task {result.run_id} submitted. Watch it with: plexus tasks watch {result.run_id}",
            highlight=False,
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
    if as_json:
        print(json.dumps({"task_id": result.run_id, "model_versions": versions}))
        return
    out.print(f"Task {result.run_id}: trained {len(versions)} score(s) of '{chosen.key}'.")
    for key, version in versions.items():
        out.print(f"  {key}: version {version}", highlight=False)


@app.command()
def evaluate(
    scorecard: ScorecardOption,
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="Evaluate this many random items.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample.")] = 0,
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
    out.print(f"Task {result.run_id}. Per-item results: {summary['results_path']}", highlight=False)


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
    table = Table("id", "status", "job", "partition", "stage", "%", "ETA", "created")
    for row in rows:
        table.add_row(
            row["id"],
            row["status"],
            row["job"],
            row["partition"] or "",
            row["stage"] or "",
            row["percent"] or "",
            row["eta"] or "",
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
    out.print(resources_line(document["resources"]), highlight=False)
    if document["error"]:
        error = document["error"]
        out.print(
            f"[red]error[/red] in stage {error.get('stage')!r} after {error.get('processed')} "
            f"items, item {error.get('item_id')!r}: {error['message']}",
            highlight=False,
        )
    for name, values in document["results"].items():
        out.print(f"results of {name}: {json.dumps(values, default=str)[:2000]}", highlight=False)


@tasks_app.command("watch")
def tasks_watch(task_id: TaskId) -> None:
    """Draw a task's progress until it ends; exit 1 unless it succeeded."""
    from plexus_dagster.tasks.watch import watch

    view = watch(_reader(task_id), out)
    out.print(f"Task {view.id} ended {view.status.value}.", highlight=False)
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
            out.print(f"{moment} {line.level:<7}{step} {line.text}", highlight=False, markup=False)
        printed = len(reader.lines)
        if not follow or view.finished:
            break
        time.sleep(0.5)


@tasks_app.command("cancel")
def tasks_cancel(task_id: TaskId) -> None:
    """Cancel a task; it ends CANCELED."""
    from plexus_dagster.tasks.launch import cancel_task

    reader = _reader(task_id)
    out.print(cancel_task(reader.instance, reader.run_id), highlight=False)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    app()


if __name__ == "__main__":
    main()
