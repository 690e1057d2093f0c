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
    confusion_markdown,
    metric_rows,
    summarize,
)
from plexus_dagster.evaluations.scoring import MissingModelError, load_scores, score_items
from plexus_dagster.resources import PlexusResource
from plexus_dagster.scorecards.assets import read_items, scorecard_for_run
from plexus_dagster.scorecards.partitions import scorecard_partitions
from plexus_dagster.sources.assets import items_key

GROUP = "evaluations"


class EvaluationConfig(dg.Config):
    """How many items to evaluate."""

    sample_size: int | None = Field(
        default=None, gt=0, description="Evaluate a random sample of this many items; all if unset."
    )
    seed: int = Field(default=0, description="Seed of the random sample, for repeatable runs.")


def _confusion_metadata(summary: dict[str, dict[str, Any]]) -> dict[str, dg.MetadataValue]:
    tables = {key: confusion_markdown(figures) for key, figures in summary.items()}
    return {
        f"{key}/confusion_matrix": dg.MetadataValue.md(table)
        for key, table in tables.items()
        if table is not None
    }


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


def build_evaluation_results(source_names: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=scorecard_partitions,
        deps=[dg.AssetKey("trained_models"), *(items_key(name) for name in source_names)],
        group_name=GROUP,
        description=(
            "A scorecard evaluated against human labels. One row is one item and score: "
            "item_id, score_key, predicted (SKIPPED when a dependency says so), label, correct, "
            "explanation, confidence. The metadata holds each score's accuracy, precision, "
            "recall, F1, Gwet's AC1 and Cohen's kappa."
        ),
        kinds={"parquet", "pandas"},
        tags={"plexus/task": "evaluate"},
    )
    def evaluation_results(
        context: dg.AssetExecutionContext, config: EvaluationConfig, plexus: PlexusResource
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        scorecard = scorecard_for_run(plexus, context.partition_key).config
        items = read_items(plexus, scorecard.source)
        if config.sample_size is not None and config.sample_size < len(items):
            items = items.sample(n=config.sample_size, random_state=config.seed)
        try:
            scores = load_scores(scorecard, plexus.model_store())
        except MissingModelError as e:
            raise dg.Failure(description=str(e)) from e
        versions = {s.config.key: s.model_version for s in scores if s.model_version}
        context.log.info(
            "Evaluating scorecard '%s' on %d items of '%s' with %d scores; models %s.",
            scorecard.key,
            len(items),
            scorecard.source,
            len(scores),
            versions or "none",
        )

        answers, errors = score_items(scores, items)
        results = attach_labels(scorecard, items, answers)
        summary = summarize(scorecard, results)

        folder = results_folder(plexus, scorecard.key, context.run.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        results_path = folder / "results.parquet"
        results.to_parquet(results_path, index=False)
        document = {
            "task_id": context.run.run_id,
            "scorecard": scorecard.key,
            "source": scorecard.source,
            "items": len(items),
            "sample_size": config.sample_size,
            "seed": config.seed,
            "model_versions": versions,
            "results_path": str(results_path),
            "errors": {"count": errors.count, "first": errors.first},
            "seconds": round(time.monotonic() - started, 3),
            "scores": summary,
        }
        summary_path = folder / "summary.json"
        summary_path.write_text(json.dumps(document, indent=2))
        context.log.info(
            "Evaluated %d items of scorecard '%s' in %.1f s; %d answers failed.",
            len(items),
            scorecard.key,
            document["seconds"],
            errors.count,
        )

        table = dg.MetadataValue.md(pd.DataFrame(metric_rows(summary)).to_markdown(index=False))
        return dg.MaterializeResult(
            metadata={
                "metrics": table,
                keys.ITEM_COUNT: len(items),
                keys.RESULTS_PATH: dg.MetadataValue.path(str(results_path)),
                keys.SUMMARY_PATH: dg.MetadataValue.path(str(summary_path)),
                keys.MODEL_VERSIONS: dg.MetadataValue.json(versions),
                "errors": errors.count,
                "dagster/row_count": len(results),
                **_plot_metadata(summary),
                **_confusion_metadata(summary),
            }
        )

    return evaluation_results
