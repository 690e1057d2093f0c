"""Training: fitting every trained score of a scorecard on its train source."""

from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from plexus_dagster import keys
from plexus_dagster.resources import PlexusResource
from plexus_dagster.scorecards.classifiers import CLASSIFIERS, train
from plexus_dagster.scorecards.embeddings import EncoderUnavailable
from plexus_dagster.scorecards.loader import Scorecard, ScorecardError
from plexus_dagster.scorecards.partitions import scorecard_partitions
from plexus_dagster.sources.assets import items_key
from plexus_dagster.sources.normalize import read_labels
from plexus_dagster.tasks.progress import StageSpec, TaskProgress
from plexus_dagster.tasks.reporting import task_progress
from plexus_dagster.workers.requirements import op_tags

GROUP = "scorecards"


def scorecard_for_run(context: dg.AssetExecutionContext, plexus: PlexusResource) -> Scorecard:
    """The scorecard a run's partition names, validated; a `dg.Failure` when it cannot run."""
    if not context.has_partition_key:
        raise dg.Failure(
            description=(
                f"Job '{context.job_name}' runs one scorecard, its partition, and none was given. "
                "Pick one, e.g. dagster job execute ... --tags "
                '\'{"dagster/partition": "banking77"}\' or --partition banking77 with '
                "dagster asset materialize."
            )
        )
    try:
        return plexus.catalog().find(context.partition_key)
    except ScorecardError as e:
        raise dg.Failure(
            description=f"Scorecard {context.partition_key!r} is invalid; fix it first:\n{e}"
        ) from e
    except KeyError as e:
        raise dg.Failure(
            description=f"{e.args[0][0].upper()}{e.args[0][1:]} (in {plexus.scorecards_dir})."
        ) from e


def read_items(plexus: PlexusResource, source: str) -> pd.DataFrame:
    """The stored items of ``source``; a `dg.Failure` saying how to make them when missing."""
    path = plexus.items_path(source)
    if not path.exists():
        raise dg.Failure(
            description=(
                f"Items of source '{source}' have not been materialized ({path} is missing). "
                f"Materialize them first: dagster asset materialize -m plexus_dagster.definitions "
                f"--select 'items/{source}+' or let `plexus evaluate` do it."
            )
        )
    return pd.read_parquet(path)


def train_item_deps(source_names: list[str]) -> list[dg.AssetKey]:
    return [items_key(name) for name in source_names]


def build_trained_models(source_names: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=scorecard_partitions,
        deps=train_item_deps(source_names),
        group_name=GROUP,
        description=(
            "Trained classifiers of a scorecard, one versioned artifact per trained score, fit "
            "on the scorecard's train_source. Evaluations use the latest version."
        ),
        kinds={"scikitlearn"},
        tags={"plexus/task": "train"},
        op_tags=op_tags(needs_from=["scores", "train_source"]),
    )
    def trained_models(
        context: dg.AssetExecutionContext, config: TrainConfig, plexus: PlexusResource
    ) -> dg.MaterializeResult:
        with task_progress(context, TRAIN_STAGES) as progress:
            versions, train_items = _train(context, config, plexus, progress)
            progress.complete({"model_versions": versions, "train_items": train_items})
        return dg.MaterializeResult(
            metadata={
                keys.MODEL_VERSIONS: dg.MetadataValue.json(versions),
                "train_items": train_items,
            }
        )

    return trained_models


TRAIN_STAGES = [
    StageSpec("Setup", unit="steps", total=1),
    StageSpec("Load items"),
    StageSpec("Train", unit="scores"),
]


class TrainConfig(dg.Config):
    """Which scores to train."""

    scores: list[str] | None = Field(
        default=None,
        description="Keys of the trained scores to train; every trained score when unset.",
    )


def _train(
    context: dg.AssetExecutionContext,
    config: TrainConfig,
    plexus: PlexusResource,
    progress: TaskProgress,
) -> tuple[dict[str, str], int]:
    with progress.stage("Setup", message="reading the scorecard"):
        scorecard = scorecard_for_run(context, plexus).config
        trained = [s for s in scorecard.scores if CLASSIFIERS[s.classifier].trainable]
        if config.scores is not None:
            unknown = sorted(set(config.scores) - {s.key for s in trained})
            if unknown:
                raise dg.Failure(
                    description=(
                        f"Scorecard '{scorecard.key}' has no trained score {', '.join(unknown)}; "
                        f"its trained scores: {', '.join(s.key for s in trained) or 'none'}."
                    )
                )
            trained = [s for s in trained if s.key in config.scores]
        progress.advance()
    if not trained:
        context.log.info("Scorecard '%s' has no trained scores.", scorecard.key)
        return {}, 0

    assert scorecard.train_source is not None  # validated with the scorecard
    with progress.stage("Load items", message=f"source '{scorecard.train_source}'"):
        items = read_items(plexus, scorecard.train_source)
        labels = read_labels(items)
        texts = items["text"].tolist()
        progress.advance(len(items))

    store = plexus.model_store()
    versions = {}
    with progress.stage("Train", total=len(trained)):
        for number, score in enumerate(trained, start=1):
            progress.set_message(f"training '{score.key}' ({number}/{len(trained)})")
            assert score.label is not None  # validated with the scorecard
            derived = [score.label.derive(item) for item in labels]
            classes = set(score.classes)
            pairs = [
                (text, label)
                for text, label in zip(texts, derived, strict=True)
                if label in classes
            ]
            found = {label for _, label in pairs}
            if len(found) < 2:
                raise dg.Failure(
                    description=(
                        f"Score '{score.key}' of scorecard '{scorecard.key}' cannot be trained: "
                        f"the {len(items)} items of '{scorecard.train_source}' give "
                        f"{len(pairs)} labels among its classes, of {len(found)} class(es) "
                        f"({', '.join(sorted(found)) or 'none'}); it needs two or more. Check "
                        "its label rule and classes."
                    )
                )
            try:
                model: Any = train(
                    score.classifier,
                    score.parameters,
                    [text for text, _ in pairs],
                    [label for _, label in pairs],
                    score=score.key,
                )
            except EncoderUnavailable as e:
                raise dg.Failure(
                    description=f"Score '{score.key}' of scorecard '{scorecard.key}': {e}"
                ) from e
            device = getattr(model, "device", "cpu")
            stored = store.save(
                scorecard,
                score,
                model,
                info={
                    "train_source": scorecard.train_source,
                    "train_items": len(pairs),
                    "classes": model.classes,
                    "device": device,
                    "run_id": context.run.run_id,
                },
            )
            versions[score.key] = stored.version
            progress.advance()
            context.log.info(
                "Trained score '%s' on %d items of '%s' on %s as version %s.",
                score.key,
                len(pairs),
                scorecard.train_source,
                device,
                stored.version,
            )
    return versions, len(items)
