"""Progress written to Dagster: a log message in the run's event log, and the run's tags.

Why a log message: bench/progress_events.py measured each kind of write Dagster offers, at
500 writes of a 630-byte snapshot. A log message cost 21 ms on SQLite and 29 ms on Postgres,
the cheapest with engine events (26 and 31 ms), which have no public API. An asset observation
cost twice as much and adds an entry to the asset's history for every snapshot. Each log
message is one row of the run's event log, which every process reads by cursor and the run's
page shows as it comes.

Run tags put the current stage, percent and expected end in the UI's runs list. Each tag write
rewrites the run's row (37 ms on SQLite, 55 ms on Postgres), so tags change only with the stage,
every tenth of a stage, and at the end.
"""

import json
import os
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from plexus_dagster import keys
from plexus_dagster.tasks.progress import StageSpec, TaskProgress
from plexus_dagster.tasks.usage import ResourceSampler


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    if value < 60:
        return f"{value:.0f} s"
    return str(timedelta(seconds=round(value)))


def describe(payload: dict[str, Any]) -> str:
    """One human line for a snapshot, as the run's page shows it."""
    if payload["kind"] == "failed" and payload["error"]:
        error = payload["error"]
        item = f" at item {error['item_id']!r}" if error["item_id"] else ""
        return (
            f"Failed in stage '{error['stage']}' after {error['processed']} items{item}: "
            f"{error['message']}"
        )
    if payload["kind"] == "completed":
        return "Completed all stages."
    current = next((s for s in payload["stages"] if s["name"] == payload["current_stage"]), None)
    if current is None:
        return "Starting."
    total = f" of {current['total']:,}" if current["total"] is not None else ""
    percent = f" ({current['percent']}%)" if current["percent"] is not None else ""
    rate = current["items_per_second"]
    speed = f", {rate:,.0f} {current['unit']}/s" if rate else ""
    eta = f", ETA {_seconds(payload['task_eta_seconds'])}" if payload["task_eta_seconds"] else ""
    message = f": {current['message']}" if current["message"] else ""
    return (
        f"{current['name']}: {current['processed']:,}{total} {current['unit']}{percent}"
        f"{speed}{eta}{message}"
    )


def progress_tags(payload: dict[str, Any]) -> dict[str, str]:
    stages = payload["stages"]
    current = next((s for s in stages if s["name"] == payload["current_stage"]), None)
    if payload["kind"] == "failed":
        stage = payload["error"]["stage"] or ""
        return {keys.STAGE_TAG: f"failed in {stage}", keys.ETA_TAG: ""}
    if payload["kind"] == "canceled":
        stage = payload["current_stage"] or ""
        return {keys.STAGE_TAG: f"canceled in {stage}", keys.ETA_TAG: ""}
    if payload["kind"] == "completed" or current is None:
        return {keys.STAGE_TAG: "done", keys.PERCENT_TAG: "100", keys.ETA_TAG: ""}
    eta = payload["task_eta_seconds"]
    ends = (
        (datetime.now(UTC) + timedelta(seconds=eta)).strftime("%Y-%m-%dT%H:%MZ")
        if eta is not None
        else ""
    )
    return {
        keys.STAGE_TAG: f"{current['name']} ({current['order'] + 1}/{len(stages)})",
        keys.PERCENT_TAG: "" if current["percent"] is None else f"{current['percent']:.0f}",
        keys.ETA_TAG: ends,
    }


class DagsterProgressSink:
    """Writes snapshots to the run's event log and its tags."""

    def __init__(self, context: dg.AssetExecutionContext | dg.OpExecutionContext) -> None:
        self.log = context.log
        self.instance = context.instance
        self.run_id = context.run.run_id
        self._tagged: tuple[str | None, int] = ("", -1)

    def write(self, payload: dict[str, Any]) -> None:
        # The human line first; the UI folds the long second part of a message away.
        compact = json.dumps(payload, separators=(",", ":"))
        self.log.info(f"{describe(payload)}\n\n{keys.PROGRESS_MARK}{compact}")
        if payload["kind"] == "stage_finished":
            return  # the next stage's start, or the completion, follows at once
        tags = progress_tags(payload)
        percent = tags.get(keys.PERCENT_TAG) or "0"
        tagged = (tags[keys.STAGE_TAG], int(float(percent)) // 10)
        if tagged != self._tagged or payload["kind"] in ("failed", "completed"):
            self.instance.add_run_tags(self.run_id, tags)
            self._tagged = tagged

    def tick(self) -> None:
        """Stops this process when the run was asked to cancel but its launcher cannot stop it.

        Tasks started by `plexus` run in a worker process that no run launcher knows, so the
        UI's Terminate only marks them canceling; SIGTERM to this process makes Dagster end the
        run CANCELED, as it does for a run its launcher stops.
        """
        run = self.instance.get_run_by_id(self.run_id)
        if run is not None and run.status == dg.DagsterRunStatus.CANCELING:
            self.log.info("The task was asked to cancel; stopping.")
            os.kill(os.getpid(), signal.SIGTERM)


class NullSink:
    """Discards progress: for runs whose config turns reporting off."""

    def write(self, payload: dict[str, Any]) -> None:
        del payload

    def tick(self) -> None:
        pass


def task_progress(
    context: dg.AssetExecutionContext, stages: list[StageSpec], *, enabled: bool = True
) -> TaskProgress:
    """Progress of the step ``context`` runs, reporting to Dagster unless disabled."""
    sink = DagsterProgressSink(context) if enabled else NullSink()
    step = context.asset_key.to_user_string() if enabled else ""
    return TaskProgress(sink, stages, step=step, sampler=ResourceSampler() if enabled else None)


def parse_progress(message: str) -> dict[str, Any] | None:
    """The snapshot a log message carries, or None for other messages."""
    _, mark, payload = message.partition(keys.PROGRESS_MARK)
    if not mark:
        return None
    try:
        parsed = json.loads(payload)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
