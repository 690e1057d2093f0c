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


def _runner(*, verbose: bool) -> Any:
    # Dagster is imported here, not at the top, so that `plexus scorecards` stays quick.
    from plexus_dagster.definitions import defs
    from plexus_dagster.instance import project_instance
    from plexus_dagster.tasks.runs import TaskRunner

    def announce(message: str) -> None:
        err.print(message, highlight=False)

    return TaskRunner(
        defs,
        project_instance(),
        log_level="INFO" if verbose else "WARNING",
        announce=announce,
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


Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show the runs' log lines.")]
ScorecardOption = Annotated[str, typer.Option("--scorecard", "-s", help="Scorecard key.")]


@app.command()
def train(scorecard: ScorecardOption, verbose: Verbose = False) -> None:
    """Train the trained scores of a scorecard, as a task in the project's instance."""
    from plexus_dagster.tasks.runs import TaskFailed

    chosen, scorecards = _scorecard(scorecard)
    runner = _runner(verbose=verbose)
    runner.register(scorecards)
    try:
        result = runner.train(chosen)
    except TaskFailed as e:
        raise _fail(str(e), code=1) from e
    versions = result.metadata.get("plexus/model_versions") or {}
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    verbose: Verbose = False,
) -> None:
    """Evaluate a scorecard against human labels, as a task in the project's instance.

    Loads the items and trains the scorecard first when that has not been done yet.
    """
    from plexus_dagster.tasks.runs import TaskFailed

    chosen, scorecards = _scorecard(scorecard)
    runner = _runner(verbose=verbose)
    runner.register(scorecards)
    try:
        result, summary = runner.evaluate(chosen, sample_size=sample, seed=seed)
    except TaskFailed as e:
        raise _fail(str(e), code=1) from e
    if as_json:
        print(json.dumps(summary))
        return
    out.print(_metrics_table(summary))
    out.print(f"Task {result.run_id}. Per-item results: {summary['results_path']}", highlight=False)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    app()


if __name__ == "__main__":
    main()
