"""Reading a task back from any process: its run, its progress, its error and its results.

A `TaskReader` keeps a cursor into the run's event log and reads only what is new at each
poll, so watching a long task costs the same at its end as at its start.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from plexus_dagster import keys
from plexus_dagster.tasks.launch import worker_died
from plexus_dagster.tasks.reporting import parse_progress

TERMINAL = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}
STAGE_FIELDS = (
    "name",
    "status",
    "processed",
    "total",
    "percent",
    "items_per_second",
    "eta_seconds",
    "message",
    "unit",
)
NO_RESOURCES: dict[str, Any] = {
    "cpu_percent": None,
    "rss_bytes": None,
    "system_memory_percent": None,
    "gpus": [],
    "gpu_status": "not sampled yet",
}


class TaskNotFound(LookupError):
    pass


def _time(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _plain(value: Any) -> Any:
    """A metadata value as JSON-friendly data."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict | list):
        return value
    if isinstance(value, dg.TableMetadataValue):
        return [dict(record.data) for record in value.records]
    return str(value)


@dataclass
class LogLine:
    timestamp: float
    level: str
    step: str | None
    text: str


@dataclass
class TaskView:
    """What is known of a task after the last poll."""

    record: dg.RunRecord
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: dict[str, Any] | None = None
    materializations: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_report: float | None = None

    @property
    def run(self) -> dg.DagsterRun:
        return self.record.dagster_run

    @property
    def status(self) -> dg.DagsterRunStatus:
        return self.run.status

    @property
    def id(self) -> str:
        return self.run.run_id

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def stages(self) -> list[dict[str, Any]]:
        several = len(self.snapshots) > 1
        stages = []
        for step, snapshot in self.snapshots.items():
            for stage in snapshot["stages"]:
                view = {name: stage.get(name) for name in STAGE_FIELDS}
                if several:
                    view["name"] = f"{step}: {stage['name']}"
                if view["status"] == "running" and self.finished:
                    view["status"] = self.status.value.lower()
                stages.append(view)
        return stages

    def resources(self) -> dict[str, Any]:
        latest = [s["resources"] for s in self.snapshots.values() if s.get("resources")]
        return latest[-1] if latest else dict(NO_RESOURCES)

    def error(self) -> dict[str, Any] | None:
        if self.status == dg.DagsterRunStatus.CANCELED:
            return None
        for snapshot in self.snapshots.values():
            if snapshot.get("error"):
                return snapshot["error"]
        return self.failure

    def results(self) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for step, snapshot in self.snapshots.items():
            if snapshot.get("results"):
                results[step] = snapshot["results"]
        if self.materializations:
            results["materializations"] = self.materializations
        return results

    def eta_seconds(self) -> float | None:
        if self.finished:
            return None
        etas = [s.get("task_eta_seconds") for s in self.snapshots.values()]
        known = [eta for eta in etas if eta is not None]
        return max(known) if known else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "eta_seconds": self.eta_seconds(),
            "last_report": _time(self.last_report),
            "job": self.run.job_name,
            "partition": self.run.tags.get(keys.PARTITION_TAG),
            "needs": self.run.tags.get(keys.NEEDS_TAG),
            "worker": self.run.tags.get(keys.WORKER_TAG) or None,
            "waiting": self.run.tags.get(keys.WAITING_TAG) or None,
            "created": _time(self.record.create_timestamp.timestamp()),
            "started": _time(self.record.start_time),
            "ended": _time(self.record.end_time),
            "stages": self.stages(),
            "resources": self.resources(),
            "error": self.error(),
            "results": self.results(),
        }


class TaskReader:
    """Follows one run's event log by cursor."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str) -> None:
        self.instance = instance
        self.run_id = run_id
        self.cursor: str | None = None
        self.lines: list[LogLine] = []
        record = instance.get_run_record_by_id(run_id)
        if record is None:
            raise TaskNotFound(f"No task {run_id!r} in the instance at {instance.root_directory}.")
        self.view = TaskView(record=record)

    def poll(self) -> TaskView:
        """Reads what the run wrote since the last poll, then the run's status.

        A run whose local worker process died is marked failed here, as nothing else would.
        """
        self._fold_new_records()
        latest = self.instance.get_run_record_by_id(self.run_id)
        if latest is not None and worker_died(self.instance, latest.dagster_run):
            self._fold_new_records()
            latest = self.instance.get_run_record_by_id(self.run_id)
        if latest is not None:
            self.view.record = latest
        return self.view

    def _fold_new_records(self) -> None:
        while True:
            connection = self.instance.get_records_for_run(
                self.run_id, cursor=self.cursor, limit=1000
            )
            for record in connection.records:
                self._fold(record.event_log_entry)
            self.cursor = connection.cursor
            if not connection.has_more:
                break

    def _fold(self, entry: dg.EventLogEntry) -> None:
        event = entry.dagster_event
        if event is None:
            payload = parse_progress(entry.user_message)
            if payload is not None:
                self.view.snapshots[payload["step"] or "task"] = payload
                self.view.last_report = entry.timestamp
                text = entry.user_message.partition(keys.PROGRESS_MARK)[0].rstrip()
            else:
                text = entry.user_message
            self.lines.append(
                LogLine(entry.timestamp, _level_name(entry.level), entry.step_key, text)
            )
            return

        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_FAILURE and self.view.failure is None:
            data = event.step_failure_data
            user = data.user_failure_data
            message = user.description if user and user.description else None
            message = message or _root_message(data.error)
            snapshot = self.view.snapshots.get(event.step_key or "")
            self.view.failure = {
                "stage": snapshot["current_stage"] if snapshot else None,
                "processed": _processed(snapshot),
                "item_id": snapshot.get("item_id") if snapshot else None,
                "message": message,
            }
        elif kind == dg.DagsterEventType.RUN_FAILURE and self.view.failure is None:
            # A run that failed outside any step, such as one whose worker died.
            snapshot = next(reversed(self.view.snapshots.values()), None)
            self.view.failure = {
                "stage": snapshot["current_stage"] if snapshot else None,
                "processed": _processed(snapshot),
                # No item was at fault: the run's process ended or was lost.
                "item_id": None,
                "message": event.message or entry.user_message or "the run failed",
            }
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
            name = materialization.asset_key.to_user_string()
            self.view.materializations[name] = {
                label: _plain(value.value) for label, value in materialization.metadata.items()
            }
        text = entry.user_message or event.message or kind.value
        self.lines.append(LogLine(entry.timestamp, _level_name(entry.level), entry.step_key, text))


def _root_message(error: Any) -> str:
    """The message of the user's exception under Dagster's wrapping of it."""
    while error is not None and error.cause is not None and "Dagster" in error.cls_name:
        error = error.cause
    return error.message.strip() if error is not None else "the step failed"


def _processed(snapshot: dict[str, Any] | None) -> int:
    if not snapshot:
        return 0
    current = snapshot.get("current_stage")
    for stage in snapshot["stages"]:
        if stage["name"] == current:
            return int(stage["processed"])
    return 0


def _level_name(level: int | str) -> str:
    return level if isinstance(level, str) else logging.getLevelName(level)


def _percent(tag: str | None) -> float | None:
    try:
        return float(tag) if tag else None
    except ValueError:
        return None


def list_tasks(
    instance: dg.DagsterInstance,
    *,
    statuses: list[dg.DagsterRunStatus] | None = None,
    job: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """The newest runs first, with their progress tags."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=statuses or [], job_name=job), limit=limit
    )
    rows = []
    for record in records:
        run = record.dagster_run
        if worker_died(instance, run):
            refreshed = instance.get_run_record_by_id(run.run_id)
            record = refreshed or record
            run = record.dagster_run
        rows.append(
            {
                "id": run.run_id,
                "status": run.status.value,
                "job": run.job_name,
                "partition": run.tags.get(keys.PARTITION_TAG),
                "stage": run.tags.get(keys.STAGE_TAG),
                "percent": _percent(run.tags.get(keys.PERCENT_TAG)),
                # A finished run's last expected end means nothing any more.
                "eta": None if run.is_finished else run.tags.get(keys.ETA_TAG) or None,
                "worker": run.tags.get(keys.WORKER_TAG) or None,
                "waiting": run.tags.get(keys.WAITING_TAG) or None,
                "created": _time(record.create_timestamp.timestamp()),
                "started": _time(record.start_time),
                "ended": _time(record.end_time),
            }
        )
    return rows


def resolve_task_id(instance: dg.DagsterInstance, task_id: str) -> str:
    """The full ID of the task whose ID is or starts with ``task_id``."""
    if instance.get_run_by_id(task_id) is not None:
        return task_id
    matches = [
        record.dagster_run.run_id
        for record in instance.get_run_records(limit=1000)
        if record.dagster_run.run_id.startswith(task_id)
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise TaskNotFound(f"No task {task_id!r} in the instance at {instance.root_directory}.")
    raise TaskNotFound(f"{task_id!r} starts {len(matches)} task IDs; give more of it.")
