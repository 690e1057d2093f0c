"""The Dagster definitions of the project: every asset, job and resource in one place."""

import dagster as dg

from plexus_dagster.automation.failures import task_failures
from plexus_dagster.automation.schedules import build_evaluation_schedule
from plexus_dagster.automation.sensors import (
    build_items_scoring_sensor,
    build_source_files_sensor,
    build_task_failure_sensor,
)
from plexus_dagster.evaluations.assets import build_evaluation_results
from plexus_dagster.jobs import evaluation_job, items_job, prediction_job, train_job
from plexus_dagster.predictions.assets import build_predictions
from plexus_dagster.resources import PlexusResource
from plexus_dagster.scorecards.assets import build_trained_models
from plexus_dagster.scorecards.sensors import scorecard_partitions_sensor
from plexus_dagster.settings import PlexusSettings, get_settings
from plexus_dagster.sources.assets import build_source_assets
from plexus_dagster.sources.models import load_sources


def build_definitions(settings: PlexusSettings) -> dg.Definitions:
    """Definitions for the sources declared in ``settings.sources_dir``."""
    sources = load_sources(settings.sources_dir)
    names = sorted(sources)
    source_assets = [asset for name in names for asset in build_source_assets(sources[name])]
    return dg.Definitions(
        assets=[
            *source_assets,
            build_trained_models(names),
            build_evaluation_results(names),
            build_predictions(names),
            task_failures,
        ],
        jobs=[items_job, train_job, evaluation_job, prediction_job],
        sensors=[
            scorecard_partitions_sensor,
            build_source_files_sensor(settings),
            build_items_scoring_sensor(settings, names),
            build_task_failure_sensor(settings),
        ],
        schedules=[build_evaluation_schedule(settings)],
        resources={"plexus": PlexusResource.from_settings(settings)},
        # Each run is one process: a worker's task process may not start processes of its own,
        # and the jobs' steps run one after the other anyway.
        executor=dg.in_process_executor,
    )


defs = build_definitions(get_settings())
