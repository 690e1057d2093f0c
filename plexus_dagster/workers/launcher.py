"""Sending runs to worker daemons over Celery, and noticing when a worker is lost.

`PlexusCeleryRunLauncher` is dagster-celery's run launcher with three changes: a run goes to a
live worker that can run it and has a free slot (to that worker's own queue; to the queue of its
needs, set by `PlexusRunCoordinator`, when there is none), a run whose worker stopped sending
heartbeats is reported failed, and terminating a run reports it canceling first so that it ends
CANCELED.
"""

import logging
from collections.abc import Mapping
from typing import Any, Self

from celery import Celery
from dagster import DagsterRun, DagsterRunStatus
from dagster import _check as check
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._serdes import ConfigurableClassData
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG, DAGSTER_CELERY_TASK_ID_TAG
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task

from plexus_dagster.keys import ASSIGNED_TAG, NEEDS_TAG, WAITING_TAG, WORKER_ID_TAG, WORKER_TAG
from plexus_dagster.workers.registry import (
    EXPIRY_SECONDS,
    Absences,
    WorkerInfo,
    WorkerRegistry,
)
from plexus_dagster.workers.requirements import QUEUE_PREFIX, parse_needs, worker_queue
from plexus_dagster.workers.slots import active_runs, busy_slots, choose_worker

logger = logging.getLogger(__name__)


def lost_worker_message(worker: str) -> str:
    return (
        f"Worker {worker} stopped sending heartbeats (none for {EXPIRY_SECONDS} s or more): it was "
        "stopped or its machine is unreachable, and this run was lost with it."
    )


def make_celery(
    broker: str | None, backend: str | None, config_source: Mapping[str, Any] | None
) -> Celery:
    """The Celery app shared by the launcher and the workers."""
    app = Celery("plexus", broker=broker, backend=backend)
    app.conf.update(
        task_default_queue=QUEUE_PREFIX,
        # Queues are named after need sets and made when first used.
        task_create_missing_queues=True,
        # A worker takes a run only when it has a free slot for it.
        worker_prefetch_multiplier=1,
        task_track_started=True,
        result_extended=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        **(config_source or {}),
    )
    create_execute_job_task(app)
    create_resume_job_task(app)
    return app


class PlexusCeleryRunLauncher(CeleryRunLauncher):
    """Launches each run on a worker that serves its needs' queue; see the module docstring."""

    def __init__(
        self,
        default_queue: str = QUEUE_PREFIX,
        broker: str | None = None,
        backend: str | None = None,
        include: list[str] | None = None,
        config_source: dict | None = None,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        super().__init__(
            default_queue=default_queue,
            broker=broker,
            backend=backend,
            include=include,
            config_source=config_source,
            inst_data=inst_data,
        )
        if not (backend or "").startswith(("redis://", "rediss://")):
            raise ValueError(
                "PlexusCeleryRunLauncher needs a Redis result backend (backend: redis://...): "
                "it keeps the workers' heartbeats there, and with rpc:// run monitoring cannot "
                "tell a running task from a lost one."
            )
        self.celery = make_celery(broker, backend, config_source)
        self.registry = WorkerRegistry(check.not_none(backend))
        self._absences = Absences()

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        return cls(inst_data=inst_data, **config_value)

    def _launch_celery_task_run(
        self, run: DagsterRun, task_signature: Any, routing_key: str
    ) -> None:
        current = self._instance.get_run_by_id(run.run_id)
        if current is None or current.is_finished:
            return  # canceled while it was being dequeued: nothing to send
        if current.status == DagsterRunStatus.CANCELING:
            self._instance.report_run_canceled(current, message="Canceled before it was sent.")
            return
        worker = self._choose_worker(run)
        if worker is not None:
            queue = worker_queue(worker.name)
            self._instance.add_run_tags(run.run_id, {ASSIGNED_TAG: worker.incarnation})
            sent = f"Sent to worker {worker.name} (Celery queue {queue})."
        else:
            queue = run.tags.get(DAGSTER_CELERY_QUEUE_TAG, self.default_queue)
            sent = f"Sent to Celery queue {queue}; the first worker serving it will start the run."
        result = task_signature.apply_async(queue=queue, routing_key=queue)
        self._instance.add_run_tags(run.run_id, {DAGSTER_CELERY_TASK_ID_TAG: result.task_id})
        self._instance.report_engine_event(sent, run, cls=self.__class__)

    def _choose_worker(self, run: DagsterRun) -> WorkerInfo | None:
        """A live worker with a free slot for the run; None when unknown or there is none."""
        try:
            workers = self.registry.live()
            others = [r for r in active_runs(self._instance) if r.run_id != run.run_id]
        except Exception:  # Redis away for a moment: the run's needs queue still routes it
            logger.exception(
                "Could not read the live workers; sending run %s by its needs.", run.run_id
            )
            return None
        return choose_worker(parse_needs(run.tags.get(NEEDS_TAG)), workers, busy_slots(others))

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        if run.status != DagsterRunStatus.CANCELING:
            self._instance.report_run_canceling(run, message="Stopping the task on its worker.")
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        if task_id:
            # SIGTERM lets Dagster end the run CANCELED; run monitoring's cancel timeout marks
            # it CANCELED if the worker is gone and cannot.
            self.celery.control.revoke(task_id, terminate=True, signal="SIGTERM")
        worker = run.tags.get(WORKER_TAG)
        if not worker or self.registry.get(worker) is None:
            # Not started on any worker, or its worker is gone: nothing will report the end.
            current = self._instance.get_run_by_id(run_id)
            if current is not None and not current.is_finished:
                self._instance.add_run_tags(run_id, {WAITING_TAG: ""})
                self._instance.report_run_canceled(
                    current, message="Canceled before a worker ran it."
                )
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = run.tags.get(WORKER_TAG)
        info = self.registry.get(worker) if worker else None
        missing = info is None or info.incarnation != run.tags.get(WORKER_ID_TAG)
        if worker and self._absences.lost(run.run_id, missing):
            return CheckRunHealthResult(WorkerStatus.FAILED, lost_worker_message(worker))
        if worker and missing:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, f"No heartbeat of {worker} now.")
        if not run.tags.get(DAGSTER_CELERY_TASK_ID_TAG):
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "Not yet sent to a worker.")
        return super().check_run_worker_health(run)
