"""Sensors that run tasks with no one at a terminal: new source files, failed tasks.

They run in `dagster-daemon` (which `dagster dev` starts too) and are on by default.
"""

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
from plexus_dagster.jobs import items_job
from plexus_dagster.resources import PlexusResource
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
