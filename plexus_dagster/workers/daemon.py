"""A worker daemon: a Celery worker that serves the queues its capabilities allow.

Started by `plexus worker start`. It reads the instance of its DAGSTER_HOME, whose run launcher
must be `PlexusCeleryRunLauncher`, and runs each task in a child process of its own that is
replaced after every run (so each run imports the code as it is now) and that dies with the
worker. While it lives, it writes a heartbeat to the registry; the run coordinator counts slots
from those heartbeats and run monitoring fails the runs of a worker whose heartbeat stopped.
"""

import contextlib
import ctypes
import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._serdes import unpack_value

from plexus_dagster.keys import WORKER_ID_TAG, WORKER_TAG
from plexus_dagster.workers.launcher import PlexusCeleryRunLauncher
from plexus_dagster.workers.registry import HEARTBEAT_SECONDS, WorkerInfo, WorkerRegistry
from plexus_dagster.workers.requirements import GPU, check_capability, worker_queue, worker_queues

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class GpuInfo:
    count: int
    models: list[str]
    reason: str = ""


def detect_gpus() -> GpuInfo:
    """The machine's NVIDIA GPUs, through NVML; none, with the reason, when NVML is missing."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as e:  # pynvml raises its own error kinds, all meaning "no GPU here"
        return GpuInfo(0, [], f"no NVIDIA driver ({type(e).__name__})")
    try:
        count = pynvml.nvmlDeviceGetCount()
        models = [
            str(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)))
            for i in range(count)
        ]
    finally:
        pynvml.nvmlShutdown()
    return GpuInfo(count, models, "" if count else "the driver reports no GPU")


def worker_launcher(instance: DagsterInstance) -> PlexusCeleryRunLauncher:
    launcher = instance.run_launcher
    if not isinstance(launcher, PlexusCeleryRunLauncher):
        raise RuntimeError(
            f"The instance at {instance.root_directory} launches runs with "
            f"{type(launcher).__name__}, not PlexusCeleryRunLauncher, so no run would reach a "
            "worker. Point DAGSTER_HOME at a folder with the worker deployment's dagster.yaml "
            "(deploy/workers/dagster.yaml)."
        )
    return launcher


@dataclass
class _Worker:
    """What the worker's process knows of itself; set before Celery starts and forks."""

    info: WorkerInfo | None = None
    registry: WorkerRegistry | None = None
    stop: threading.Event | None = None


_this = _Worker()


@dataclass
class _Task:
    """The task running in this pool process."""

    done: threading.Event | None = None
    run_id: str = ""


_task = _Task()
# How often a task's process checks that its run is still its own, and how long it lets an
# ended run's own last writes take.
FENCE_SECONDS = 3.0


def _beat(info: WorkerInfo, registry: WorkerRegistry, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            registry.beat(info)
        except Exception:  # Redis away for a moment: the next beat may reach it
            logger.exception("Could not write the heartbeat of worker %s.", info.name)
        stop.wait(HEARTBEAT_SECONDS)


@worker_ready.connect
def _start_heartbeat(**_: Any) -> None:
    if _this.info is None or _this.registry is None:
        return
    _this.stop = threading.Event()
    threading.Thread(
        target=_beat,
        args=(_this.info, _this.registry, _this.stop),
        name="plexus-heartbeat",
        daemon=True,
    ).start()
    logger.info("Worker %s is ready; queues: %s.", _this.info.name, ", ".join(_this.info.queues))


@worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    if _this.info is None or _this.registry is None:
        return
    if _this.stop is not None:
        _this.stop.set()
    with contextlib.suppress(Exception):
        _this.registry.remove(_this.info.name)


def _interrupt_on_sigterm(run_id: str) -> None:
    """Celery stops a revoked task with SIGTERM; Dagster ends a run CANCELED on SIGINT when the
    run is CANCELING. A cancel that came while the run was starting can have been overwritten by
    the run's start: the run is marked canceling again first, or it would end failed and be
    retried."""

    def stop() -> None:
        with contextlib.suppress(Exception), DagsterInstance.get() as instance:
            run = instance.get_run_by_id(run_id)
            if (
                run is not None
                and run.status == DagsterRunStatus.STARTED
                and _cancel_asked(instance, run_id)
            ):
                instance.report_run_canceling(run, message="Canceled while it was starting.")
        os.kill(os.getpid(), signal.SIGINT)

    # Database work does not belong in a signal handler; a thread does it.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop, daemon=True).start())


def _cancel_asked(instance: DagsterInstance, run_id: str) -> bool:
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_CANCELING, limit=1
    ).records
    return bool(records)


def _fence(run_id: str, done: threading.Event) -> None:
    """Ends this task's process when the run was ended by someone else while it still runs:
    its worker was judged lost (a paused machine, a lost heartbeat) and the run failed and was
    retried elsewhere, or it was canceled and timed out. Two copies must not go on together."""
    finished_since: float | None = None
    with DagsterInstance.get() as instance:
        while not done.wait(FENCE_SECONDS):
            try:
                run = instance.get_run_by_id(run_id)
            except Exception:
                logger.warning("Could not read run %s; checking again.", run_id, exc_info=True)
                continue
            if run is None or not run.is_finished or run.status == DagsterRunStatus.SUCCESS:
                finished_since = None
                continue
            # The run's own end writes its status a moment before the process returns.
            finished_since = finished_since or time.monotonic()
            if time.monotonic() - finished_since >= FENCE_SECONDS:
                logger.error("Run %s ended %s elsewhere; stopping this copy.", run_id, run.status)
                os.kill(os.getpid(), signal.SIGKILL)


def _die_with_parent() -> None:
    """A task process outlives a worker killed outright unless the kernel ends it too."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@task_prerun.connect
def _claim_run(kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    """Runs in the task's process: records on the run which worker runs it, unless the run was
    canceled or ended before the worker got to it."""
    if _this.info is None or not kwargs:
        return
    _die_with_parent()
    packed = kwargs.get("execute_job_args_packed")
    if packed is None:
        return
    run_id = getattr(unpack_value(packed), "run_id", None)  # ExecuteRunArgs or ResumeRunArgs
    if run_id is None:
        return
    _interrupt_on_sigterm(run_id)
    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return  # Dagster ignores a run that has ended
        if run.status == DagsterRunStatus.CANCELING:
            # Dagster would leave it to the cancel timeout.
            instance.report_run_canceled(run, message="Canceled before its worker started it.")
            return
        instance.add_run_tags(
            run_id, {WORKER_TAG: _this.info.name, WORKER_ID_TAG: _this.info.incarnation}
        )
    _task.run_id = run_id
    _task.done = threading.Event()
    threading.Thread(
        target=_fence, args=(run_id, _task.done), name="plexus-fence", daemon=True
    ).start()


@task_postrun.connect
def _release_run(**_: Any) -> None:
    """Runs in the task's process once the run's execution returned."""
    if _task.done is not None:
        _task.done.set()
    if not _task.run_id:
        return
    with contextlib.suppress(Exception), DagsterInstance.get() as instance:
        run = instance.get_run_by_id(_task.run_id)
        if run is not None and run.status == DagsterRunStatus.CANCELING:
            # Canceled between the claim and the start: Dagster left it to the cancel timeout.
            instance.report_run_canceled(run, message="Canceled while its worker started it.")


def start_worker(
    *,
    name: str | None,
    capabilities: list[str],
    concurrency: int,
    log_level: str = "INFO",
) -> None:
    """Runs a worker in this process until it is stopped."""
    instance = DagsterInstance.get()
    launcher = worker_launcher(instance)
    gpus = detect_gpus()
    caps = sorted({check_capability(c) for c in capabilities} | ({GPU} if gpus.count else set()))
    if gpus.count:
        logger.info("Found %d GPU(s): %s; offering gpu.", gpus.count, ", ".join(gpus.models))
    else:
        logger.info("No GPU (%s).", gpus.reason)
    host = socket.gethostname()
    worker_name = name or f"worker-{uuid.uuid4().hex[:6]}"
    info = WorkerInfo(
        name=worker_name,
        host=host,
        pid=os.getpid(),
        capabilities=caps,
        concurrency=concurrency,
        queues=[worker_queue(worker_name), *worker_queues(caps)],
        started_at=time.time(),
    )
    existing = launcher.registry.claim(info)
    if existing is not None:
        raise RuntimeError(
            f"A worker named {worker_name} is already alive on {existing.host} (pid "
            f"{existing.pid}); give this one another --name."
        )
    _this.info = replace(info)
    _this.registry = launcher.registry
    launcher.celery.worker_main(
        [
            "worker",
            f"--hostname={worker_name}@{host}",
            f"--queues={','.join(info.queues)}",
            f"--concurrency={concurrency}",
            # A fresh process for every run: it imports the code as it is now, and the in-process
            # executor runs there (a pool process may not start processes of its own).
            "--max-tasks-per-child=1",
            "--prefetch-multiplier=1",
            "--without-gossip",
            "--without-mingle",
            f"--loglevel={log_level}",
        ]
    )
