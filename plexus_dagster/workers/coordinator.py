"""The queued run coordinator of the worker deployment: needs in, slots out.

On submission a run gets its needs (from its ops' tags and its scorecard), the Celery queue of
those needs and the tag every worker run carries. At each pass of the daemon, the coordinator
turns the live workers and their free slots into tag concurrency limits: the runs of a queue may
take the free slots of the workers that can serve it, and all runs together the free slots of
all workers. A run no live worker can take stays QUEUED, tagged with the reason, and holds up no
other run.
"""

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Self

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.run_coordinator.queued_run_coordinator import RunQueueConfig
from dagster._serdes import ConfigurableClassData
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG, DAGSTER_CELERY_TASK_ID_TAG

from plexus_dagster import keys
from plexus_dagster.keys import ASSIGNED_TAG, WAITING_TAG, WORKER_ID_TAG, WORKER_TAG
from plexus_dagster.scorecards.loader import ScorecardError
from plexus_dagster.settings import get_settings
from plexus_dagster.workers import k8s
from plexus_dagster.workers.launcher import lost_worker_message
from plexus_dagster.workers.registry import Absences, WorkerInfo, WorkerRegistry
from plexus_dagster.workers.requirements import (
    NEEDS_TAG,
    RequirementError,
    format_needs,
    ops_needs,
    parse_needs,
    queue_name,
    scorecard_needs,
)
from plexus_dagster.workers.slots import (
    ACTIVE,
    POOL,
    POOL_TAG,
    busy_slots,
    free_slots,
    holder,
    worker_name,
)

logger = logging.getLogger(__name__)

PROGRESS_TAGS = (keys.STAGE_TAG, keys.PERCENT_TAG, keys.ETA_TAG)


def run_needs(instance: DagsterInstance, run: DagsterRun) -> frozenset[str]:
    """The run's needs: its ops' needs and, for those that ask, its scorecard's."""
    snapshot = instance.get_job_snapshot(run.job_snapshot_id) if run.job_snapshot_id else None
    op_tags = [op.tags for op in snapshot.node_defs_snapshot.op_def_snaps] if snapshot else []
    needs, parts = ops_needs(op_tags)
    scorecard = run.tags.get(keys.PARTITION_TAG) or run.tags.get(keys.SCORECARD_TAG)
    if parts and scorecard:
        from plexus_dagster.resources import PlexusResource

        plexus = PlexusResource.from_settings(get_settings())
        catalog = plexus.catalog()
        found = catalog.scorecards.get(scorecard)
        if found is not None:
            config = found.config
            source = configured_source(run.run_config)
            if source:  # e.g. scoring another source than the scorecard's own
                config = config.model_copy(update={"source": source})
            needs |= scorecard_needs(config, plexus.sources(), parts)
    return needs


def configured_source(run_config: Mapping[str, Any]) -> str | None:
    """The ``source`` an op of the run is configured with, if any."""
    for op in (run_config.get("ops") or {}).values():
        source = ((op or {}).get("config") or {}).get("source")
        if isinstance(source, str) and source:
            return source
    return None


def waiting_reason(needs: frozenset[str]) -> str:
    wanted = format_needs(needs).replace(",", ", ") or "no particular capability"
    return f"waiting for a worker with {wanted}"


def queue_slots(queue_needs: frozenset[str], workers: Sequence[WorkerInfo]) -> int:
    return sum(worker.concurrency for worker in workers if worker.can_run(queue_needs))


class PlexusRunCoordinator(QueuedRunCoordinator):
    """Queues runs and starts each only when a live worker that can run it has a free slot."""

    def __init__(self, registry_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._registry_url = registry_url
        self._registry: WorkerRegistry | None = None
        self._absences = Absences()

    @classmethod
    def config_type(cls) -> Any:
        from dagster import Field, StringSource

        base = QueuedRunCoordinator.config_type()
        assert isinstance(base, dict)
        return {
            **base,
            "registry_url": Field(
                StringSource,
                is_required=False,
                description=(
                    "Redis URL of the worker heartbeats; the run launcher's result backend when "
                    "unset."
                ),
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        values = dict(config_value)
        registry_url = values.pop("registry_url", None)
        coordinator = super().from_config_value(inst_data, values)
        coordinator._registry_url = registry_url
        return coordinator

    @property
    def registry(self) -> WorkerRegistry | None:
        """The worker heartbeats; None in a deployment without worker daemons (Kubernetes)."""
        if self._registry is None:
            url = self._registry_url or getattr(self._instance.run_launcher, "backend", None)
            if url and url.startswith(("redis://", "rediss://")):
                self._registry = WorkerRegistry(url)
        return self._registry

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        try:
            needs = run_needs(self._instance, run)
        except RequirementError as e:
            # Routed by a part of its needs, it could run where it must not.
            self._instance.report_run_failed(
                run, message=f"The run's needs cannot be read, so no worker is chosen: {e}"
            )
            return run
        except (ScorecardError, OSError) as e:
            # The run itself reports the bad scorecard; route it by its ops' needs alone.
            logger.warning("Could not read the needs of run %s: %s", run.run_id, e)
            needs = parse_needs(run.tags.get(NEEDS_TAG))
        tags = {
            NEEDS_TAG: format_needs(needs),
            DAGSTER_CELERY_QUEUE_TAG: queue_name(needs),
            POOL_TAG: POOL,
            # A retried run starts afresh: the worker of the run it retries is not its own.
            WORKER_TAG: "",
            WORKER_ID_TAG: "",
            ASSIGNED_TAG: "",
            DAGSTER_CELERY_TASK_ID_TAG: "",
            # Nor is its progress: a retry starts with none.
            **{tag: "" for tag in PROGRESS_TAGS if tag in run.tags},
        }
        if os.environ.get(k8s.CONFIG_ENV):
            tags.update(k8s.k8s_tags(needs))
        if self.registry is not None:
            workers = self.registry.live()
            tags[WAITING_TAG] = "" if queue_slots(needs, workers) else waiting_reason(needs)
        self._instance.add_run_tags(run.run_id, tags)
        return super().submit_run(context)

    def cancel_run(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is not None and run.tags.get(WAITING_TAG):
            self._instance.add_run_tags(run_id, {WAITING_TAG: ""})  # it waits no more
        return super().cancel_run(run_id)

    def get_run_queue_config(self) -> RunQueueConfig:
        base = super().get_run_queue_config()
        if self.registry is None:
            return base
        try:
            limits = self._worker_limits()
        except Exception:
            logger.exception("Could not read the live workers; starting no run this pass.")
            limits = [{"key": POOL_TAG, "value": POOL, "limit": 0}]
        return base._replace(tag_concurrency_limits=[*base.tag_concurrency_limits, *limits])

    def _worker_limits(self) -> list[dict[str, Any]]:
        assert self.registry is not None
        workers = self.registry.live()
        runs = self._instance.get_runs(
            RunsFilter(statuses=[DagsterRunStatus.QUEUED, *ACTIVE], tags={POOL_TAG: POOL})
        )
        active = [run for run in runs if run.status != DagsterRunStatus.QUEUED]
        busy = busy_slots(active)
        free = {worker.incarnation: free_slots(worker, busy) for worker in workers}
        # Dagster counts the runs in flight against each limit: a limit is those runs plus the
        # free slots they may still take.
        limits: list[dict[str, Any]] = [
            {"key": POOL_TAG, "value": POOL, "limit": len(active) + sum(free.values())}
        ]
        queues: dict[str, frozenset[str]] = {}
        in_flight: dict[str, int] = {}
        for run in runs:
            needs = parse_needs(run.tags.get(NEEDS_TAG))
            queue = run.tags.get(DAGSTER_CELERY_QUEUE_TAG, queue_name(needs))
            queues[queue] = needs
            if run.status == DagsterRunStatus.QUEUED:
                self._update_waiting(run, needs, workers)
            else:
                in_flight[queue] = in_flight.get(queue, 0) + 1
                if run.status == DagsterRunStatus.STARTING:
                    self._fail_if_lost(run, workers)
        for queue, needs in sorted(queues.items()):
            open_slots = sum(free[w.incarnation] for w in workers if w.can_run(needs))
            limits.append(
                {
                    "key": DAGSTER_CELERY_QUEUE_TAG,
                    "value": queue,
                    "limit": in_flight.get(queue, 0) + open_slots,
                }
            )
        return limits

    def _fail_if_lost(self, run: DagsterRun, workers: Sequence[WorkerInfo]) -> None:
        """Fails a run whose worker was lost before the run reported its start: the worker
        that took it, or the one it was sent to.

        Run monitoring judges started runs; one still starting would wait out the start timeout.
        """
        incarnation = holder(run)
        missing = incarnation not in {info.incarnation for info in workers}
        if incarnation and self._absences.lost(run.run_id, missing):
            worker = run.tags.get(WORKER_TAG) or worker_name(incarnation)
            self._instance.report_run_failed(run, message=lost_worker_message(worker))

    def _update_waiting(
        self, run: DagsterRun, needs: frozenset[str], workers: Sequence[WorkerInfo]
    ) -> None:
        reason = "" if queue_slots(needs, workers) else waiting_reason(needs)
        if run.tags.get(WAITING_TAG, "") != reason:
            self._instance.add_run_tags(run.run_id, {WAITING_TAG: reason})
