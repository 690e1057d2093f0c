"""Running the project's jobs as tasks, as the CLI and benchmarks do.

Each task is one Dagster run, recorded in the instance so that the UI shows it. A task whose
inputs are missing first runs the task that makes them: items before training, evaluation and
scoring, training before an evaluation or a scoring of a scorecard whose trained scores have no
current model.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from plexus_dagster import keys
from plexus_dagster.evaluations.scoring import untrained_scores
from plexus_dagster.resources import PlexusResource
from plexus_dagster.scorecards.classifiers import CLASSIFIERS
from plexus_dagster.scorecards.loader import Scorecard
from plexus_dagster.scorecards.partitions import register_scorecards
from plexus_dagster.sources.assets import items_key, source_key
from plexus_dagster.sources.loading import local_copy, source_signature
from plexus_dagster.sources.models import SourceConfig
from plexus_dagster.tasks.launch import InProcessLauncher, Launcher, RunRequest
from plexus_dagster.tasks.reading import TaskReader, TaskView

logger = logging.getLogger(__name__)

Announce = Callable[[str], None]
Follow = Callable[[TaskReader], TaskView]


class TaskFailed(RuntimeError):
    """A task's run did not succeed; the message is what the run reported."""

    def __init__(self, job: str, run_id: str, status: str, reason: str) -> None:
        self.run_id = run_id
        super().__init__(f"Task {run_id} ({job}) ended {status}: {reason}")


@dataclass(frozen=True)
class TaskResult:
    job: str
    run_id: str
    metadata: dict[str, Any]
    finished: bool = True


def wait_quietly(reader: TaskReader, *, poll: float = 0.5) -> TaskView:
    """Polls a task until it ends."""
    view = reader.poll()
    while not view.finished:
        time.sleep(poll)
        view = reader.poll()
    return view


class TaskRunner:
    """Starts jobs of ``defs`` as tasks in ``instance`` and follows them to their end.

    Args:
        launcher: how runs start; in this process unless given.
        follow: called with a reader of each task that must be waited for, returns at its end;
            the CLI draws progress bars here.
        announce: hears what the runner decides, such as training before an evaluation.
        log_level: the level of the runs' console log, which a worker writes to its log file.
    """

    def __init__(
        self,
        defs: dg.Definitions,
        instance: dg.DagsterInstance,
        *,
        launcher: Launcher | None = None,
        follow: Follow = wait_quietly,
        announce: Announce = logger.info,
        log_level: str = "WARNING",
    ) -> None:
        self.defs = defs
        self.instance = instance
        self.launcher = launcher or InProcessLauncher(defs, instance)
        self.follow = follow
        self.announce = announce
        self.log_level = log_level
        resources = defs.resources or {}
        self.plexus: PlexusResource = resources["plexus"]

    def run(
        self,
        job: str,
        *,
        partition: str | None = None,
        config: dict[str, Any] | None = None,
        asset_selection: list[dg.AssetKey] | None = None,
        wait: bool = True,
    ) -> TaskResult:
        """Starts a task; with ``wait``, follows it and raises `TaskFailed` unless it succeeds."""
        request = RunRequest(
            job=job,
            partition=partition,
            run_config={
                "loggers": {"console": {"config": {"log_level": self.log_level}}},
                **(config or {}),
            },
            asset_selection=[list(key.path) for key in asset_selection]
            if asset_selection
            else None,
        )
        run_id = self.launcher.start(request)
        if not wait:
            return TaskResult(job=job, run_id=run_id, metadata={}, finished=False)
        view = self.follow(TaskReader(self.instance, run_id))
        if view.status != dg.DagsterRunStatus.SUCCESS:
            error = view.error()
            reason = error["message"] if error else "see the run in the UI"
            raise TaskFailed(job, run_id, view.status.value, reason)
        metadata: dict[str, Any] = {}
        for values in view.materializations.values():
            metadata.update(values)
        return TaskResult(job=job, run_id=run_id, metadata=metadata)

    def register(self, scorecards: dict[str, Scorecard]) -> None:
        added = register_scorecards(self.instance, sorted(scorecards))
        if added:
            logger.info("Registered scorecard partitions: %s.", ", ".join(added))

    def _items_stale(self, source: SourceConfig) -> bool:
        """Items are stale when missing, or when the source's declaration or file changed."""
        stored = self.plexus.items_signature(source.name)
        if stored is None or not self.plexus.items_path(source.name).exists():
            return True
        current = source_signature(source, local_copy(source, self.plexus.settings))
        return current != stored

    def ensure_items(self, source_names: list[str]) -> list[TaskResult]:
        """Loads the items of each source whose stored items are missing or out of date."""
        sources = self.plexus.sources()
        names = dict.fromkeys(source_names)
        stale = [name for name in names if self._items_stale(sources[name])]
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
            "training them first."
        )
        return [self.train(scorecard, scores=missing)]

    def train(
        self, scorecard: Scorecard, *, scores: list[str] | None = None, wait: bool = True
    ) -> TaskResult:
        """Trains the scorecard's trained scores, or only ``scores``."""
        config = scorecard.config
        self.ensure_items([config.train_source] if config.train_source else [])
        run_config = {"ops": {"trained_models": {"config": {"scores": scores}}}}
        return self.run("train_job", partition=scorecard.key, config=run_config, wait=wait)

    def evaluate(
        self,
        scorecard: Scorecard,
        *,
        sample_size: int | None = None,
        seed: int = 0,
        options: dict[str, Any] | None = None,
        wait: bool = True,
    ) -> tuple[TaskResult, dict[str, Any] | None]:
        """Evaluates ``scorecard`` after the tasks it needs; with ``wait``, returns the summary."""
        config = scorecard.config
        # One task loads what is stale of both sources; changed training items retire models.
        trains = any(CLASSIFIERS[score.classifier].trainable for score in config.scores)
        needed = [config.source, config.train_source if trains else None]
        self.ensure_items([name for name in needed if name])
        self.ensure_models(scorecard)
        self.announce(f"Evaluating scorecard '{scorecard.key}'.")
        op_config = {"sample_size": sample_size, "seed": seed, **(options or {})}
        result = self.run(
            "evaluation_job",
            partition=scorecard.key,
            config={"ops": {"evaluation_results": {"config": op_config}}},
            wait=wait,
        )
        if not result.finished:
            return result, None
        summary_path = Path(str(result.metadata[keys.SUMMARY_PATH]))
        return result, json.loads(summary_path.read_text())

    def predict(
        self,
        scorecard: Scorecard,
        *,
        source: str | None = None,
        options: dict[str, Any] | None = None,
        wait: bool = True,
    ) -> TaskResult:
        """Scores the items of ``source`` (the scorecard's own by default) after what it needs.

        With ``wait``, the result's metadata holds the counts of new, out-of-date, already scored
        and failed items and the path of the stored predictions.
        """
        config = scorecard.config
        trains = any(CLASSIFIERS[score.classifier].trainable for score in config.scores)
        needed = [source or config.source, config.train_source if trains else None]
        self.ensure_items([name for name in needed if name])
        self.ensure_models(scorecard)
        self.announce(f"Scoring the items of '{source or config.source}' with '{scorecard.key}'.")
        op_config = {"source": source, **(options or {})}
        return self.run(
            "prediction_job",
            partition=scorecard.key,
            config={"ops": {"predictions": {"config": op_config}}},
            wait=wait,
        )
