"""Starting a job's run: in this process, or in a process of its own that outlives the caller.

The embedded default has no daemon, so a task started from the command line runs in a detached
worker process (``python -m plexus_dagster.tasks.worker``), which records its host and process id
on the run so that `cancel_task` can stop it from any process on the machine.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import dagster as dg
import psutil

from plexus_dagster import keys


@dataclass(frozen=True)
class RunRequest:
    """What to run: a job of the definitions, with its partition, config and selection."""

    job: str
    partition: str | None = None
    run_config: dict[str, Any] = field(default_factory=dict)
    asset_selection: list[list[str]] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def run_tags(self) -> dict[str, str]:
        tags = dict(self.tags)
        if self.partition:
            tags[keys.SCORECARD_TAG] = self.partition
        return tags

    def execute(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> bool:
        """Runs the request in this process; True when the run succeeded."""
        selection = (
            [dg.AssetKey(path) for path in self.asset_selection] if self.asset_selection else None
        )
        result = defs.resolve_job_def(self.job).execute_in_process(
            run_config=self.run_config,
            instance=instance,
            partition_key=self.partition,
            asset_selection=selection,
            tags=self.run_tags(),
            run_id=self.run_id,
            raise_on_error=False,
        )
        return result.success


class Launcher(Protocol):
    def start(self, request: RunRequest) -> str:
        """Starts the run and returns its ID once the instance knows the run."""
        ...


class InProcessLauncher:
    """Runs each task to its end in this process: for tests and benchmarks."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs = defs
        self.instance = instance

    def start(self, request: RunRequest) -> str:
        request.execute(self.defs, self.instance)
        return request.run_id


class LaunchError(RuntimeError):
    pass


class LocalProcessLauncher:
    """Runs each task in a detached worker process on this machine."""

    def __init__(self, instance: dg.DagsterInstance, *, start_timeout: float = 120.0) -> None:
        self.instance = instance
        self.start_timeout = start_timeout
        self.logs = Path(instance.root_directory) / "task-logs"

    def start(self, request: RunRequest) -> str:
        self.logs.mkdir(parents=True, exist_ok=True)
        spec = self.logs / f"{request.run_id}.json"
        spec.write_text(json.dumps(asdict(request)))
        log_path = self.logs / f"{request.run_id}.log"
        with log_path.open("w") as log:
            worker = subprocess.Popen(  # noqa: S603 - runs this package's own worker module
                [sys.executable, "-m", "plexus_dagster.tasks.worker", str(spec)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the task goes on when the command that started it ends
            )
        deadline = time.monotonic() + self.start_timeout
        while self.instance.get_run_by_id(request.run_id) is None:
            code = worker.poll()
            if code is not None or time.monotonic() > deadline:
                tail = log_path.read_text()[-2000:]
                raise LaunchError(
                    f"The worker for task {request.run_id} ({request.job}) "
                    f"{'exited with code ' + str(code) if code is not None else 'did not start'} "
                    f"before the run began. Its output ({log_path}):\n{tail}"
                )
            time.sleep(0.1)
        return request.run_id


def worker_tags() -> dict[str, str]:
    """Tags naming the process that runs a task, for cancelling it."""
    return {keys.HOST_TAG: socket.gethostname(), keys.PID_TAG: str(os.getpid())}


def worker_died(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Marks an unfinished run failed when its local worker process is gone; True if it did.

    Only runs of `LocalProcessLauncher` workers on this machine are judged: their process id is
    on the run. A worker killed outright never reports its own end.
    """
    pid = run.tags.get(keys.PID_TAG)
    if run.is_finished or pid is None or run.tags.get(keys.HOST_TAG) != socket.gethostname():
        return False
    if psutil.pid_exists(int(pid)):
        return False
    current = instance.get_run_by_id(run.run_id)
    if current is None or current.is_finished:
        return False  # it ended between the two looks
    instance.report_run_failed(
        current, message=f"The worker process {pid} of this task ended without reporting."
    )
    return True


def cancel_task(instance: dg.DagsterInstance, run_id: str, *, timeout: float = 10.0) -> str:
    """Cancels a task; returns what happened. The run ends CANCELED.

    A queued run is cancelled in the instance. A run of a local worker is marked canceling and its
    worker is sent SIGTERM, which Dagster turns into a cancellation at the next safe point. Other
    runs go to the instance's run coordinator, which asks their launcher to stop them.
    """
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(f"No task {run_id!r} in the instance at {instance.root_directory}.")
    if run.is_finished:
        return f"Task {run_id} already ended {run.status.value}."
    if run.status in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED):
        instance.report_run_canceled(run, message="Canceled before it started.")
        return f"Task {run_id} was canceled before it started."

    pid = run.tags.get(keys.PID_TAG)
    if pid is None or run.tags.get(keys.HOST_TAG) != socket.gethostname():
        instance.run_coordinator.cancel_run(run_id)
        return f"Asked the run launcher to stop task {run_id}."

    instance.report_run_canceling(run, message="Canceled from the plexus command line.")
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = instance.get_run_by_id(run_id)
        if current is not None and current.is_finished:
            return f"Task {run_id} ended {current.status.value}."
        time.sleep(0.1)
    # The worker died without reporting: record the cancellation ourselves.
    current = instance.get_run_by_id(run_id)
    if current is not None and not current.is_finished:
        instance.report_run_canceled(current, message="The worker did not stop in time.")
    return f"Task {run_id} was marked CANCELED; its worker did not report in {timeout:.0f} s."
