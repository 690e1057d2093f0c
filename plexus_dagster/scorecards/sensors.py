"""Keeping the scorecard partitions in step with the scorecards folder."""

import dagster as dg

from plexus_dagster.resources import PlexusResource
from plexus_dagster.scorecards.loader import ScorecardError, load_scorecard, scorecard_files
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
    known_sources = set(plexus.sources())
    registered = set(context.instance.get_dynamic_partitions(scorecard_partitions.name or ""))
    new_keys = []
    for path in scorecard_files(plexus.settings.scorecards_dir):
        try:
            key = load_scorecard(path, known_sources=known_sources).key
        except ScorecardError as e:
            context.log.warning("Skipping an invalid scorecard file:\n%s", e)
            continue
        if key not in registered and key not in new_keys:
            new_keys.append(key)
    if new_keys:
        context.log.info("Registering %d new scorecard(s): %s.", len(new_keys), ", ".join(new_keys))
    return dg.SensorResult(
        dynamic_partitions_requests=[scorecard_partitions.build_add_request(new_keys)]
        if new_keys
        else []
    )
