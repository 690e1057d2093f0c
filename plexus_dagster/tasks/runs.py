"""Running the project's jobs as tasks in an instance, as the CLI and benchmarks do.

Each task is one Dagster run, recorded in the instance so that the UI shows it. A task whose
inputs are missing first runs the task that makes them: items before training and evaluation,
training before an evaluation of a scorecard whose trained scores have no current model.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from plexus_dagster import keys
from plexus_dagster.evaluations.scoring import untrained_scores
from plexus_dagster.resources import PlexusResource
from plexus_dagster.scorecards.loader import Scorecard
from plexus_dagster.scorecards.partitions import register_scorecards
from plexus_dagster.sources.assets import items_key, source_key
from plexus_dagster.sources.loading import SourceError, locate_source

logger = logging.getLogger(__name__)

Announce = Callable[[str], None]


class TaskFailed(RuntimeError):
    """A task's run failed; the message is what the run reported."""

    def __init__(self, job: str, run_id: str, reason: str) -> None:
        self.run_id = run_id
        super().__init__(f"Task {run_id} ({job}) failed: {reason}")


@dataclass(frozen=True)
class TaskResult:
    job: str
    run_id: str
    metadata: dict[str, Any]


def _failure_reason(result: dg.ExecuteInProcessResult) -> str:
    reasons = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            reasons.append(data.user_failure_data.description)
        elif data.error is not None:
            reasons.append(data.error.message.strip())
    return "\n".join(reasons) or "the run failed before any step ran; see the run in the UI"


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for materialization in result.get_asset_materialization_events():
        for name, entry in materialization.materialization.metadata.items():
            values[name] = entry.value
    return values


class TaskRunner:
    """Runs jobs of ``defs`` in ``instance``, logging at ``log_level`` to the console."""

    def __init__(
        self,
        defs: dg.Definitions,
        instance: dg.DagsterInstance,
        *,
        log_level: str = "WARNING",
        announce: Announce = logger.info,
    ) -> None:
        self.defs = defs
        self.instance = instance
        self.log_level = log_level
        self.announce = announce
        resources = defs.resources or {}
        self.plexus: PlexusResource = resources["plexus"]

    def run(
        self,
        job: str,
        *,
        partition: str | None = None,
        config: dict[str, Any] | None = None,
        asset_selection: list[dg.AssetKey] | None = None,
    ) -> TaskResult:
        run_config: dict[str, Any] = {
            "loggers": {"console": {"config": {"log_level": self.log_level}}},
            **(config or {}),
        }
        tags = {keys.SCORECARD_TAG: partition} if partition else {}
        result = self.defs.resolve_job_def(job).execute_in_process(
            run_config=run_config,
            instance=self.instance,
            partition_key=partition,
            asset_selection=asset_selection,
            tags=tags,
            raise_on_error=False,
        )
        if not result.success:
            raise TaskFailed(job, result.run_id, _failure_reason(result))
        return TaskResult(job=job, run_id=result.run_id, metadata=_metadata(result))

    def register(self, scorecards: dict[str, Scorecard]) -> None:
        added = register_scorecards(self.instance, sorted(scorecards))
        if added:
            logger.info("Registered scorecard partitions: %s.", ", ".join(added))

    def _items_stale(self, source_name: str) -> bool:
        items = self.plexus.items_path(source_name)
        if not items.exists():
            return True
        source = self.plexus.sources()[source_name]
        try:
            located = locate_source(source, self.plexus.settings)
        except SourceError:
            return True  # the run reports the real problem
        return located.stat().st_mtime > items.stat().st_mtime

    def ensure_items(self, source_names: list[str]) -> list[TaskResult]:
        """Loads the items of each source whose stored items are missing or older than its file."""
        stale = [name for name in dict.fromkeys(source_names) if self._items_stale(name)]
        if not stale:
            return []
        self.announce(f"Loading items of {', '.join(stale)}.")
        selection = [key for name in stale for key in (source_key(name), items_key(name))]
        return [self.run("items_job", asset_selection=selection)]

    def ensure_models(self, scorecard: Scorecard) -> list[TaskResult]:
        """Trains the scorecard when one of its trained scores has no current model."""
        missing = untrained_scores(scorecard.config, self.plexus.model_store())
        if not missing:
            return []
        self.announce(
            f"Scorecard '{scorecard.key}' has no current model for {', '.join(missing)}; "
            "training it first."
        )
        return [self.train(scorecard)]

    def train(self, scorecard: Scorecard) -> TaskResult:
        config = scorecard.config
        prerequisites = [config.train_source] if config.train_source else []
        self.ensure_items(prerequisites)
        return self.run("train_job", partition=scorecard.key)

    def evaluate(
        self, scorecard: Scorecard, *, sample_size: int | None = None, seed: int = 0
    ) -> tuple[TaskResult, dict[str, Any]]:
        """Evaluates ``scorecard``, running the tasks it needs first; returns the summary too."""
        self.ensure_items([scorecard.config.source])
        self.ensure_models(scorecard)
        self.announce(f"Evaluating scorecard '{scorecard.key}'.")
        op_config = {"sample_size": sample_size, "seed": seed}
        result = self.run(
            "evaluation_job",
            partition=scorecard.key,
            config={"ops": {"evaluation_results": {"config": op_config}}},
        )
        summary_path = Path(str(result.metadata[keys.SUMMARY_PATH]))
        return result, json.loads(summary_path.read_text())
