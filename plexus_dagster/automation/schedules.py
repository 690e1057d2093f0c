"""Re-evaluating every scorecard on a schedule, nightly unless PLEXUS_EVALUATION_CRON says else."""

from datetime import UTC, datetime

import dagster as dg

from plexus_dagster.jobs import evaluation_job
from plexus_dagster.resources import PlexusResource
from plexus_dagster.scorecards.partitions import register_scorecards
from plexus_dagster.settings import PlexusSettings


def build_evaluation_schedule(settings: PlexusSettings) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="evaluation_schedule",
        job=evaluation_job,
        cron_schedule=settings.evaluation_cron,
        execution_timezone=settings.evaluation_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            "Evaluates every valid scorecard, one evaluation_job run per scorecard partition, at "
            f"'{settings.evaluation_cron}' ({settings.evaluation_timezone}); set "
            "PLEXUS_EVALUATION_CRON and PLEXUS_EVALUATION_TIMEZONE to change it. Invalid "
            "scorecard files are named in the tick's log and skipped."
        ),
    )
    def evaluation_schedule(
        context: dg.ScheduleEvaluationContext, plexus: PlexusResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        catalog = plexus.catalog()
        for problem in catalog.errors:
            context.log.warning("Not evaluating an invalid scorecard file: %s", problem)
        names = sorted(catalog.scorecards)
        if not names:
            return dg.SkipReason(f"No valid scorecard in {plexus.scorecards_dir}.")
        # A file added since scorecard_partitions_sensor last looked gets its partition here.
        register_scorecards(context.instance, names)
        stamp = (context.scheduled_execution_time or datetime.now(UTC)).isoformat()
        # One run per scorecard and scheduled time, however often the tick is evaluated.
        return [dg.RunRequest(run_key=f"{name}:{stamp}", partition_key=name) for name in names]

    return evaluation_schedule
