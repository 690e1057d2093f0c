"""Keeping the scorecard partitions in step with the scorecards folder."""

import dagster as dg

from plexus_dagster.resources import PlexusResource
from plexus_dagster.scorecards.partitions import scorecard_partitions


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Registers a partition for each valid scorecard file that has none yet, so that new "
        "scorecards can be evaluated without restarting anything. Invalid files are reported "
        "in the sensor's log and skipped."
    ),
)
def scorecard_partitions_sensor(
    context: dg.SensorEvaluationContext, plexus: PlexusResource
) -> dg.SensorResult:
    catalog = plexus.catalog()
    for problem in catalog.errors:
        context.log.warning("Skipping an invalid scorecard file: %s", problem)
    registered = set(context.instance.get_dynamic_partitions(scorecard_partitions.name or ""))
    new_keys = sorted(set(catalog.scorecards) - registered)
    if new_keys:
        context.log.info("Registering %d new scorecard(s): %s.", len(new_keys), ", ".join(new_keys))
    return dg.SensorResult(
        dynamic_partitions_requests=[scorecard_partitions.build_add_request(new_keys)]
        if new_keys
        else []
    )
