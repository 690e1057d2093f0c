"""Scoring: a scorecard's answers for the items of a source, kept up to date as it grows."""

import time
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from plexus_dagster import keys
from plexus_dagster.evaluations.scoring import (
    MissingModelError,
    TooManyFailures,
    load_scores,
    score_items,
)
from plexus_dagster.predictions.planning import plan_scoring, score_versions
from plexus_dagster.predictions.storage import (
    PredictionsError,
    empty_predictions,
    locked,
    merge_predictions,
    predictions_path,
    read_predictions,
    text_hashes,
    write_predictions,
)
from plexus_dagster.resources import PlexusResource
from plexus_dagster.scorecards.assets import read_items, scorecard_for_run
from plexus_dagster.scorecards.partitions import scorecard_partitions
from plexus_dagster.sources.assets import items_key
from plexus_dagster.tasks.progress import StageSpec, TaskProgress
from plexus_dagster.tasks.reporting import task_progress

GROUP = "predictions"


class PredictionConfig(dg.Config):
    """Which source to score and when to give up."""

    source: str | None = Field(
        default=None,
        description="The source whose items are scored; the scorecard's own source when unset.",
    )
    max_error_share: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "Share of the items to score whose scoring may fail (each is recorded, skipped and "
            "tried again by the next run) before the task fails."
        ),
    )
    report_progress: bool = Field(
        default=True, description="Write live progress to the event log and the run's tags."
    )


STAGES = [
    StageSpec("Setup", unit="steps", total=2),
    StageSpec("Load items"),
    StageSpec("Score"),
    StageSpec("Store", unit="files", total=1),
]


def build_predictions(source_names: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=scorecard_partitions,
        deps=[dg.AssetKey("trained_models"), *(items_key(name) for name in source_names)],
        group_name=GROUP,
        description=(
            "A scorecard's answers for the items of a source (the scorecard's source unless the "
            "run names another). One row is one item and score: item_id, score_key, value "
            "(SKIPPED when a dependency says so), explanation, confidence, model_version, "
            "text_hash, scored_at. Items already answered by the current version of every "
            "score are not scored again."
        ),
        kinds={"parquet", "pandas"},
        tags={"plexus/task": "predict"},
    )
    def predictions(
        context: dg.AssetExecutionContext, config: PredictionConfig, plexus: PlexusResource
    ) -> dg.MaterializeResult:
        with task_progress(context, STAGES, enabled=config.report_progress) as progress:
            return _predict(context, config, plexus, progress)

    return predictions


def _predict(
    context: dg.AssetExecutionContext,
    config: PredictionConfig,
    plexus: PlexusResource,
    progress: TaskProgress,
) -> dg.MaterializeResult:
    started = time.monotonic()
    with progress.stage("Setup", message="reading the scorecard"):
        scorecard = scorecard_for_run(context, plexus).config
        source = config.source or scorecard.source
        known = plexus.sources()
        if source not in known:
            raise dg.Failure(
                description=(
                    f"Unknown source {source!r} for scorecard '{scorecard.key}'; declared "
                    f"sources: {', '.join(sorted(known)) or 'none'} (in {plexus.sources_dir})."
                )
            )
        progress.advance()
        progress.set_message("loading the classifiers")
        try:
            scores = load_scores(scorecard, plexus.model_store())
        except MissingModelError as e:
            raise dg.Failure(description=str(e)) from e
        versions = score_versions(scores)
        progress.advance()

    path = predictions_path(plexus.settings.predictions_dir, scorecard.key, source)

    def waiting() -> None:
        context.log.info("Another task is scoring '%s' into %s; waiting for it.", source, path)

    with locked(path, on_wait=waiting):
        with progress.stage("Load items", message=f"source '{source}'"):
            items = read_items(plexus, source)[["item_id", "text"]]
            items = items.assign(text_hash=text_hashes(items["text"].tolist()))
            try:
                stored = read_predictions(path)
            except PredictionsError as e:
                raise dg.Failure(description=str(e)) from e
            plan = plan_scoring(scores, versions, items, stored)
            progress.advance(len(items))
        context.log.info(
            "Scorecard '%s' on %d items of '%s': %d new, %d out of date, %d already scored.",
            scorecard.key,
            len(items),
            source,
            plan.new,
            plan.outdated,
            plan.current,
        )

        allowed = int(config.max_error_share * plan.to_score)
        failed: set[str] = set()
        first_errors: list[dict[str, str]] = []
        frames = []
        with progress.stage("Score", total=plan.to_score, message=f"{len(scores)} scores"):
            for batch in plan.batches:
                chosen = [s for s in scores if s.config.key in batch.score_keys]
                try:
                    answers, found = score_items(
                        chosen,
                        batch.items,
                        progress=progress,
                        max_failed_items=max(0, allowed - len(failed)),
                    )
                except TooManyFailures as e:
                    raise dg.Failure(
                        description=f"Scorecard '{scorecard.key}' on '{source}': {e}",
                        metadata={"stage": "Score", "item_id": str(progress.item_id)},
                    ) from e
                failed |= found.items
                first_errors.extend(found.first[: found.keep - len(first_errors)])
                frames.append(answers)

        with progress.stage("Store", message=str(path)):
            scored_at = datetime.now(UTC)
            fresh = _rows(frames, items, versions, scored_at, failed=failed)
            merged = merge_predictions(stored, fresh, score_keys=list(versions))
            if not fresh.empty or len(merged) != len(stored) or not path.exists():
                write_predictions(merged, path)
            progress.advance()

    seconds = round(time.monotonic() - started, 3)
    context.log.info(
        "Scored %d items of '%s' with scorecard '%s' in %.1f s (%d already scored, %d failed); "
        "%d rows in %s.",
        plan.to_score - len(failed),
        source,
        scorecard.key,
        seconds,
        plan.current,
        len(failed),
        len(merged),
        path,
    )
    counts = {
        "items": len(items),
        "new_items": plan.new,
        "rescored_items": plan.outdated,
        "already_scored": plan.current,
        "failed_items": len(failed),
    }
    progress.complete(
        {
            "scorecard": scorecard.key,
            "source": source,
            **counts,
            "results_path": str(path),
            "rows": len(merged),
            "model_versions": versions,
            "seconds": seconds,
        }
    )
    return dg.MaterializeResult(
        metadata={
            keys.SOURCE: source,
            keys.ITEM_COUNT: len(items),
            keys.NEW_ITEMS: plan.new,
            keys.RESCORED_ITEMS: plan.outdated,
            keys.ALREADY_SCORED: plan.current,
            keys.FAILED_ITEMS: len(failed),
            keys.RESULTS_PATH: dg.MetadataValue.path(str(path)),
            keys.MODEL_VERSIONS: dg.MetadataValue.json(versions),
            "errors": dg.MetadataValue.json(first_errors),
            "seconds": seconds,
            "dagster/row_count": len(merged),
        }
    )


def _rows(
    frames: list[pd.DataFrame],
    items: pd.DataFrame,
    versions: dict[str, str],
    scored_at: datetime,
    *,
    failed: set[str],
) -> pd.DataFrame:
    """Stored rows of this run's answers, leaving out every answer of an item that failed."""
    if not frames:
        return empty_predictions()
    answers = pd.concat(frames, ignore_index=True).rename(columns={"predicted": "value"})
    answers = answers[~answers["item_id"].isin(failed)]
    hashes = pd.Series(items["text_hash"].to_numpy(), index=items["item_id"].to_numpy())
    return answers.assign(
        confidence=answers["confidence"].astype(float),
        model_version=answers["score_key"].map(versions),
        text_hash=answers["item_id"].map(hashes),
        scored_at=pd.Timestamp(scored_at),
    )
