"""Submitting tasks to the instance's run coordinator, as the UI and schedules do.

With a queued run coordinator (the worker deployment) a task is created from the code location
of ``workspace.yaml`` and queued; the daemon starts it on a worker when one that can run it has
a free slot. The code location is loaded once per launcher and shut down with it.
"""

import contextlib
from pathlib import Path
from types import TracebackType

import dagster as dg
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from plexus_dagster import keys
from plexus_dagster.settings import PROJECT_ROOT
from plexus_dagster.tasks.launch import LaunchError, RunRequest

WORKSPACE_FILE = PROJECT_ROOT / "workspace.yaml"


class QueuedLauncher:
    """Creates each task's run from the code location and submits it to the run coordinator."""

    def __init__(self, instance: dg.DagsterInstance, workspace_file: Path = WORKSPACE_FILE) -> None:
        self.instance = instance
        self.workspace_file = workspace_file
        self._stack = contextlib.ExitStack()
        self._workspace: WorkspaceRequestContext | None = None

    def __enter__(self) -> "QueuedLauncher":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        self._workspace = None

    def workspace(self) -> WorkspaceRequestContext:
        if self._workspace is None:
            process = self._stack.enter_context(
                WorkspaceProcessContext(
                    self.instance, WorkspaceFileTarget(paths=[str(self.workspace_file)])
                )
            )
            self._workspace = process.create_request_context()
        return self._workspace

    def start(self, request: RunRequest) -> str:
        workspace = self.workspace()
        errors = workspace.code_location_errors()
        if errors:
            raise LaunchError(
                f"The code location of {self.workspace_file} failed to load: {errors[0].message}"
            )
        [name] = workspace.code_location_names
        location = workspace.get_code_location(name)
        [repository] = location.get_repositories().values()
        selection = (
            frozenset(dg.AssetKey(path) for path in request.asset_selection)
            if request.asset_selection
            else None
        )
        remote_job = location.get_job(
            JobSubsetSelector(
                location_name=name,
                repository_name=repository.name,
                job_name=request.job,
                op_selection=None,
                asset_selection=selection,
            )
        )
        plan = location.get_execution_plan(
            remote_job,
            request.run_config,
            step_keys_to_execute=None,
            known_state=None,
            instance=self.instance,
        ).execution_plan_snapshot
        tags = {**remote_job.tags, **request.run_tags()}
        if request.partition:
            tags[keys.PARTITION_TAG] = request.partition
        run = self.instance.create_run(
            job_name=request.job,
            run_id=request.run_id,
            run_config=request.run_config,
            resolved_op_selection=None,
            step_keys_to_execute=plan.step_keys_to_execute,
            op_selection=None,
            status=None,
            root_run_id=None,
            parent_run_id=None,
            tags=tags,
            job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_selection=selection,
            asset_check_selection=None,
            asset_graph=repository.asset_graph,
        )
        self.instance.submit_run(run.run_id, workspace)
        return run.run_id
