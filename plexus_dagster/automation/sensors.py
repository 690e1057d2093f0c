"""Sensors that run tasks with no one at a terminal: new source files, new items, failed tasks.

They run in `dagster-daemon` (which `dagster dev` starts too) and are on by default.

A changed file is loaded, then scored, by two sensors rather than one: the first starts the
items run, the second reacts to the items' materialization. Scoring thus follows the stored
items, not the file: it waits for the load to succeed, never starts when it fails, and also
follows items loaded by hand or by `plexus`. Declarative automation could say "then" too, but
the predictions asset is partitioned by scorecard and depends on every source's items, so an
eager condition would score every scorecard when any source changes, and has no way to pass
the source to score in the run's config.
"""

import json
from pathlib import Path

import dagster as dg

from plexus_dagster import keys
from plexus_dagster.automation.failures import describe_failure, record_failure
from plexus_dagster.automation.watching import (
    detect_changes,
    read_cursor,
    watched_paths,
    write_cursor,
)
from plexus_dagster.evaluations.scoring import untrained_scores
from plexus_dagster.jobs import items_job, prediction_job
from plexus_dagster.resources import PlexusResource
from plexus_dagster.scorecards.partitions import scorecard_partitions
from plexus_dagster.settings import PlexusSettings
from plexus_dagster.sources.assets import items_key, source_key
from plexus_dagster.sources.loading import source_signature


def failures_path(settings: PlexusSettings) -> Path:
    return settings.storage_dir / "task_failures.jsonl"


def build_source_files_sensor(settings: PlexusSettings) -> dg.SensorDefinition:
    @dg.sensor(
        name="source_files_sensor",
        jobs=[items_job],
        minimum_interval_seconds=settings.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Watches the file of each source that has a path and loads the source's items when "
            "the file is new or its content changed (size and modification time first, then "
            "SHA-256). The new items are then scored by items_scoring_sensor. Sources known "
            "only by a URL are not watched: their items load when a task needs them."
        ),
    )
    def source_files_sensor(
        context: dg.SensorEvaluationContext, plexus: PlexusResource
    ) -> dg.SensorResult:
        sources = plexus.sources()
        signatures = {name: plexus.items_signature(name) for name in sources}
        paths = watched_paths(sources, plexus.settings)

        def already_loaded(name: str) -> bool:
            stored = signatures[name]
            return stored is not None and stored == source_signature(sources[name], paths[name])

        changes, states = detect_changes(
            paths, read_cursor(context.cursor), already_loaded=already_loaded
        )

        for change in changes:
            context.log.info(
                "The file of source '%s' is new or changed (%s); loading its items.",
                change.source,
                change.state.path,
            )
        # The run key makes a change start one run, even when a tick is evaluated again after
        # the daemon died before storing its cursor.
        requests = [
            dg.RunRequest(
                run_key=change.run_key,
                job_name=items_job.name,
                asset_selection=[source_key(change.source), items_key(change.source)],
                tags={
                    keys.SOURCE_TAG: change.source,
                    keys.SOURCE_SHA256_TAG: change.state.sha256,
                },
            )
            for change in changes
        ]
        return dg.SensorResult(run_requests=requests, cursor=write_cursor(states))

    return source_files_sensor


def _latest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, after: int | None
) -> int | None:
    """The storage id of the newest materialization of ``key`` after ``after``, if any."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=1, ascending=False
    ).records
    return records[0].storage_id if records else None


def build_items_scoring_sensor(
    settings: PlexusSettings, source_names: list[str]
) -> dg.SensorDefinition:
    # A plain sensor with a cursor of storage ids rather than a multi-asset sensor, which Dagster
    # marks superseded: only the newest materialization of each source's items matters, as a
    # scoring run scores every item not scored yet.
    @dg.sensor(
        name="items_scoring_sensor",
        jobs=[prediction_job],
        minimum_interval_seconds=settings.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "When a source's items are materialized, scores them with every valid scorecard "
            "whose source is that source: one prediction_job run per scorecard partition, which "
            "scores only the items not scored yet. Registers the partition of a scorecard that "
            "has none yet."
        ),
    )
    def items_scoring_sensor(
        context: dg.SensorEvaluationContext, plexus: PlexusResource
    ) -> dg.SensorResult:
        seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        catalog = plexus.catalog()
        for problem in catalog.errors:
            context.log.warning("Not scoring with an invalid scorecard file: %s", problem)
        by_source: dict[str, list[str]] = {}
        for key, scorecard in sorted(catalog.scorecards.items()):
            by_source.setdefault(scorecard.config.source, []).append(key)

        store = plexus.model_store()
        requests = []
        for source in source_names:
            latest = _latest_materialization(context.instance, items_key(source), seen.get(source))
            if latest is None:
                continue
            seen[source] = latest
            scorecards = []
            for key in by_source.get(source, []):
                missing = untrained_scores(catalog.scorecards[key].config, store)
                if missing:
                    # Scoring would fail at once; training is a task of its own to start.
                    context.log.warning(
                        "Not scoring source '%s' with scorecard '%s': %s have no model trained "
                        "with their current configuration. Train them (train_job for partition "
                        "'%s', or plexus train --scorecard %s); the next items of the source "
                        "will then be scored.",
                        source,
                        key,
                        ", ".join(missing),
                        key,
                        key,
                    )
                    continue
                scorecards.append(key)
            context.log.info(
                "Items of source '%s' were materialized; scoring them with %d scorecard(s): %s.",
                source,
                len(scorecards),
                ", ".join(scorecards) or "none",
            )
            # One run per scorecard and materialization, however often the tick is evaluated.
            requests += [
                dg.RunRequest(
                    run_key=f"{key}:{source}:{latest}",
                    job_name=prediction_job.name,
                    partition_key=key,
                    run_config={"ops": {"predictions": {"config": {"source": source}}}},
                    tags={keys.SOURCE_TAG: source},
                )
                for key in scorecards
            ]

        registered = set(context.instance.get_dynamic_partitions(scorecard_partitions.name or ""))
        new_keys = sorted({r.partition_key for r in requests if r.partition_key} - registered)
        return dg.SensorResult(
            run_requests=requests,
            cursor=json.dumps(seen, sort_keys=True),
            dynamic_partitions_requests=[scorecard_partitions.build_add_request(new_keys)]
            if new_keys
            else [],
        )

    return items_scoring_sensor


def build_task_failure_sensor(settings: PlexusSettings) -> dg.SensorDefinition:
    path = failures_path(settings)

    @dg.run_failure_sensor(
        name="task_failure_sensor",
        monitor_all_code_locations=True,
        minimum_interval_seconds=settings.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Records each failed task, of any job: its run, job, partition, the stage where it "
            f"failed and the error, as an event of asset task_failures and a line of {path}."
        ),
    )
    def task_failure_sensor(context: dg.RunFailureSensorContext) -> None:
        failure = describe_failure(context.instance, context.dagster_run)
        if record_failure(context.instance, failure, path):
            context.log.info(
                "Recorded the failure of task %s (%s) in stage '%s'.",
                failure.run_id,
                failure.job,
                failure.stage,
            )

    return task_failure_sensor
