"""The evaluation: a scorecard run over labelled items and measured against the labels."""

import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from plexus_dagster import keys
from plexus_dagster.evaluations.analysis import (
    METRIC_NAMES,
    attach_labels,
    metric_rows,
    summarize,
)
from plexus_dagster.evaluations.checkpoint import Checkpoint
from plexus_dagster.evaluations.run_config import refuse_invalid_config
from plexus_dagster.evaluations.scoring import (
    MissingModelError,
    ScoringErrors,
    TooManyFailures,
    load_scores,
    score_items,
)
from plexus_dagster.resources import PlexusResource
from plexus_dagster.scorecards.assets import read_items, scorecard_for_run
from plexus_dagster.scorecards.models import ERROR
from plexus_dagster.scorecards.partitions import scorecard_partitions
from plexus_dagster.sources.assets import items_key
from plexus_dagster.tasks.progress import StageSpec, TaskProgress
from plexus_dagster.tasks.reporting import task_progress
from plexus_dagster.workers.requirements import op_tags

GROUP = "evaluations"


class EvaluationConfig(dg.Config):
    """Which items to evaluate and when to give up."""

    sample_size: int | None = Field(
        default=None, gt=0, description="Evaluate a random sample of this many items; all if unset."
    )
    seed: int = Field(
        default=0, ge=0, le=2**32 - 1, description="Seed of the random sample, for repeatable runs."
    )
    max_error_share: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "Share of items whose scoring may fail (each is recorded and skipped) before the "
            "evaluation fails."
        ),
    )
    report_progress: bool = Field(
        default=True, description="Write live progress to the event log and the run's tags."
    )


STAGES = [
    StageSpec("Setup", unit="steps", total=2),
    StageSpec("Load items"),
    StageSpec("Score"),
    StageSpec("Analyze", unit="scores"),
    StageSpec("Store", unit="files", total=2),
]


# Wider matrices stay in the summary JSON: a table of more columns does not read in the UI.
MAX_MATRIX_CLASSES = 12
LABEL_COLUMN = "label \\ answer"
COUNT_COLUMNS = ("evaluated", "skipped", "errors")


def confusion_table(figures: dict[str, Any]) -> dg.TableMetadataValue | None:
    """The confusion matrix as a table: a row per human label, a column per answer."""
    matrix = figures["confusion_matrix"]
    labels = [str(label) for label in matrix["labels"]]
    if not matrix["matrix"] or len(labels) > MAX_MATRIX_CLASSES:
        return None
    columns = [
        dg.TableColumn(LABEL_COLUMN, "string", description="The human label of the items."),
        *(
            dg.TableColumn(label, "int", description=f"Items the score answered '{label}'.")
            for label in labels
        ),
    ]
    records = [
        dg.TableRecord({LABEL_COLUMN: label, **dict(zip(labels, map(int, counts), strict=True))})
        for label, counts in zip(labels, matrix["matrix"], strict=True)
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns))


def metrics_table(summary: dict[str, dict[str, Any]]) -> dg.TableMetadataValue:
    """A row per score with its headline figures; empty cells where a figure is undefined."""
    rows = [
        {name: int(value) if name in COUNT_COLUMNS else value for name, value in row.items()}
        for row in metric_rows(summary)
    ]
    columns = [
        dg.TableColumn("score", "string", description="The score's key."),
        *(dg.TableColumn(name, "float") for name in METRIC_NAMES),
        dg.TableColumn("evaluated", "int", description="Items measured against a label."),
        dg.TableColumn("skipped", "int", description="Items a depends_on condition skipped."),
        dg.TableColumn("errors", "int", description="Items whose scoring failed."),
    ]
    return dg.MetadataValue.table(
        [dg.TableRecord(row) for row in rows], schema=dg.TableSchema(columns)
    )


def _confusion_metadata(summary: dict[str, dict[str, Any]]) -> dict[str, dg.MetadataValue]:
    tables = {key: confusion_table(figures) for key, figures in summary.items()}
    return {f"{key}/confusion_matrix": table for key, table in tables.items() if table is not None}


def _plot_metadata(summary: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Numeric figures as flat metadata entries, which the UI plots across materializations."""
    figures = {}
    for score_key, score in summary.items():
        for name in METRIC_NAMES:
            value = score[name]
            if value is not None:
                figures[f"{score_key}/{name}"] = float(value)
    return figures


def results_folder(plexus: PlexusResource, scorecard: str, run_id: str) -> Path:
    return plexus.settings.evaluations_dir / scorecard / run_id


def checkpoint_folder(
    plexus: PlexusResource, scorecard: str, context: dg.AssetExecutionContext
) -> Path:
    """Shared by a run and its retries: they have the same root run."""
    root = context.run.root_run_id or context.run.run_id
    return plexus.settings.storage_dir / "checkpoints" / scorecard / root


def build_evaluation_results(source_names: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=scorecard_partitions,
        deps=[dg.AssetKey("trained_models"), *(items_key(name) for name in source_names)],
        group_name=GROUP,
        description=(
            "A scorecard evaluated against human labels. One row is one item and score: "
            "item_id, score_key, predicted (SKIPPED when a dependency says so), label, correct, "
            "explanation, confidence. The metadata holds a table of each score's accuracy, "
            "precision, recall, F1, Gwet's AC1 and Cohen's kappa, each score's confusion matrix "
            "as a table (up to 12 classes), and each figure as a number: under Plots, 'Events' "
            "draws a scorecard's figures across its runs."
        ),
        kinds={"parquet", "pandas"},
        tags={"plexus/task": "evaluate"},
        op_tags=op_tags(needs_from=["scores", "source"]),
    )
    def evaluation_results(
        context: dg.AssetExecutionContext, config: EvaluationConfig, plexus: PlexusResource
    ) -> dg.MaterializeResult:
        with task_progress(context, STAGES, enabled=config.report_progress) as progress:
            return _evaluate(context, config, plexus, progress)

    return refuse_invalid_config(evaluation_results, EvaluationConfig)


def _evaluate(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    plexus: PlexusResource,
    progress: TaskProgress,
) -> dg.MaterializeResult:
    started = time.monotonic()
    with progress.stage("Setup", message="reading the scorecard"):
        scorecard = scorecard_for_run(context, plexus).config
        progress.advance()
        progress.set_message("loading the classifiers")
        try:
            scores = load_scores(scorecard, plexus.model_store())
        except MissingModelError as e:
            raise dg.Failure(description=str(e)) from e
        progress.advance()
    versions = {s.config.key: s.model_version for s in scores if s.model_version}

    with progress.stage("Load items", message=f"source '{scorecard.source}'"):
        items = read_items(plexus, scorecard.source)
        population = len(items)
        if config.sample_size is not None and config.sample_size < population:
            items = items.sample(n=config.sample_size, random_state=config.seed)
        elif config.sample_size is not None:
            context.log.warning(
                "The sample size %d is not below the %d items of '%s'; evaluating all of them.",
                config.sample_size,
                population,
                scorecard.source,
            )
        progress.advance(len(items))
    if items.empty:
        context.log.warning(
            "Source '%s' has no items; the evaluation measures nothing.", scorecard.source
        )
    context.log.info(
        "Evaluating scorecard '%s' on %d items of '%s' with %d scores; models %s.",
        scorecard.key,
        len(items),
        scorecard.source,
        len(scores),
        versions or "none",
    )

    allowed = int(config.max_error_share * len(items))
    counted = f"{len(scores)} score{'' if len(scores) == 1 else 's'}"
    checkpoint = Checkpoint(checkpoint_folder(plexus, scorecard.key, context), versions)
    with progress.stage("Score", total=len(items), message=counted):
        done = checkpoint.load(items["item_id"].tolist(), [s.config.key for s in scores])
        errors = ScoringErrors()
        if not done.empty:
            resumed = done["item_id"].nunique()
            errors.items |= set(done.loc[done["predicted"] == ERROR, "item_id"])
            errors.count = int((done["predicted"] == ERROR).sum())
            context.log.info(
                "Resuming run %s: %d items were scored before it was lost; scoring the rest.",
                context.run.root_run_id,
                resumed,
            )
            progress.advance(resumed)
            progress.set_message(f"{counted}; {resumed} items taken from the lost attempt")
        todo = items[~items["item_id"].isin(set(done["item_id"]))]
        try:
            answers, errors = score_items(
                scores,
                todo,
                progress=progress,
                max_failed_items=allowed,
                errors=errors,
                on_batch=checkpoint.save,
            )
        except TooManyFailures as e:
            raise dg.Failure(
                description=f"Scorecard '{scorecard.key}': {e}",
                metadata={"stage": "Score", "item_id": str(progress.item_id)},
            ) from e

    if not done.empty:
        answers = pd.concat([done, answers], ignore_index=True)
    with progress.stage("Analyze", total=len(scorecard.scores)):
        results = attach_labels(scorecard, items, answers)
        summary = summarize(scorecard, results)
        progress.advance(len(scorecard.scores))

    with progress.stage("Store"):
        folder = results_folder(plexus, scorecard.key, context.run.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        results_path = folder / "results.parquet"
        results.to_parquet(results_path, index=False)
        progress.advance()
        document = {
            "task_id": context.run.run_id,
            "scorecard": scorecard.key,
            "source": scorecard.source,
            "items": len(items),
            "population": population,
            "sample_size": config.sample_size,
            "seed": config.seed,
            "model_versions": versions,
            "results_path": str(results_path),
            "errors": {"count": errors.count, "items": len(errors.items), "first": errors.first},
            "seconds": round(time.monotonic() - started, 3),
            "scores": summary,
        }
        summary_path = folder / "summary.json"
        summary_path.write_text(json.dumps(document, indent=2))
        checkpoint.discard()
        progress.advance()
    context.log.info(
        "Evaluated %d items of scorecard '%s' in %.1f s; %d answers failed.",
        len(items),
        scorecard.key,
        document["seconds"],
        errors.count,
    )

    progress.complete(
        {
            "items": len(items),
            "failed_items": len(errors.items),
            "results_path": str(results_path),
            "summary_path": str(summary_path),
            "model_versions": versions,
            "metrics": {row["score"]: row for row in metric_rows(summary)},
        }
    )
    return dg.MaterializeResult(
        metadata={
            "metrics": metrics_table(summary),
            keys.ITEM_COUNT: len(items),
            "plexus/population": population,
            "plexus/sample_size": config.sample_size or 0,
            "plexus/seed": config.seed,
            keys.RESULTS_PATH: dg.MetadataValue.path(str(results_path)),
            keys.SUMMARY_PATH: dg.MetadataValue.path(str(summary_path)),
            keys.MODEL_VERSIONS: dg.MetadataValue.json(versions),
            "errors": errors.count,
            "dagster/row_count": len(results),
            **_plot_metadata(summary),
            **_confusion_metadata(summary),
        }
    )
