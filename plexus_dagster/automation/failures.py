"""The record of failed tasks: a line of JSON per failure, and an event of asset `task_failures`.

The JSON Lines file is for scripts and for keeping; the asset event is what the team sees in
the UI: asset `task_failures` lists one materialization per failed task, whose metadata links
to the run and gives its job, partition, stage and error, and plots the failures counted so far.
"""

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from plexus_dagster import keys
from plexus_dagster.tasks.reading import TaskReader

TASK_FAILURES = dg.AssetKey("task_failures")
FAILED_PREFIX = "failed in "

task_failures = dg.AssetSpec(
    TASK_FAILURES,
    group_name="tasks",
    description=(
        "Tasks that failed, recorded by task_failure_sensor. One event is one failed task: its "
        "run (task id), job, partition, the stage where it failed and the error. The same "
        "records are lines of the JSON Lines file named in the metadata."
    ),
    kinds={"jsonl"},
)


@dataclass(frozen=True)
class TaskFailure:
    """What the team needs to know of one failed task."""

    run_id: str
    job: str
    partition: str | None
    stage: str | None
    error: str
    failed_at: str
    processed: int | None = None
    item_id: str | None = None


def describe_failure(instance: dg.DagsterInstance, run: dg.DagsterRun) -> TaskFailure:
    """The failure of ``run``, read back from its tags and its event log.

    The stage comes from the run's tag `plexus/stage` ("failed in Score"), which progress
    reporting sets when a stage fails; the error from the failure event, preferring the user's
    own message over Dagster's wrapping of it.
    """
    error = TaskReader(instance, run.run_id).poll().error() or {}
    stage_tag = run.tags.get(keys.STAGE_TAG, "")
    stage = stage_tag.removeprefix(FAILED_PREFIX) if stage_tag.startswith(FAILED_PREFIX) else None
    record = instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record is not None and record.end_time else None
    return TaskFailure(
        run_id=run.run_id,
        job=run.job_name,
        partition=run.tags.get(keys.PARTITION_TAG),
        stage=stage or error.get("stage"),
        error=error.get("message") or "the run failed; see its log",
        failed_at=datetime.fromtimestamp(ended or datetime.now(UTC).timestamp(), UTC).isoformat(
            timespec="seconds"
        ),
        processed=error.get("processed"),
        item_id=error.get("item_id"),
    )


def recorded_run_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with path.open() as file:
        return {json.loads(line)["run_id"] for line in file if line.strip()}


def record_failure(instance: dg.DagsterInstance, failure: TaskFailure, path: Path) -> bool:
    """Appends ``failure`` to the file and reports it on asset `task_failures`.

    Returns False, recording nothing, when the file already holds the run: a tick repeated
    after a crash of the daemon records each failure once.
    """
    known = recorded_run_ids(path)
    if failure.run_id in known:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.write(json.dumps(asdict(failure)) + "\n")
    metadata: dict[str, dg.RawMetadataValue] = {
        "run": dg.MetadataValue.dagster_run(failure.run_id),
        "job": failure.job,
        "partition": failure.partition or "",
        "stage": failure.stage or "before any stage",
        "error": dg.MetadataValue.md(f"```\n{failure.error}\n```"),
        "failed_at": failure.failed_at,
        "failures_recorded": len(known) + 1,
        "records": dg.MetadataValue.path(str(path)),
    }
    if failure.item_id:
        metadata["item_id"] = failure.item_id
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            TASK_FAILURES,
            description=f"{failure.job} failed in {failure.stage or 'no stage'}: {failure.error}",
            metadata=metadata,
        )
    )
    return True
