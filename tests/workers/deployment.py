"""A worker deployment on this machine, for tests and benchmarks: its own Postgres database,
Redis databases, DAGSTER_HOME, dagster-daemon and worker daemons, all removed at the end."""

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import redis

from plexus_dagster.settings import PROJECT_ROOT
from plexus_dagster.tasks.launch import RunRequest
from plexus_dagster.workers.registry import WorkerRegistry
from plexus_dagster.workers.submit import QueuedLauncher
from tests.integration import BIN, POSTGRES

REDIS = "redis://127.0.0.1:6379"
TEST_JOBS_WORKSPACE = (
    "load_from:\n  - python_module:\n      module_name: tests.workers.jobs\n"
    f"      location_name: worker_tests\n      working_directory: {PROJECT_ROOT}\n"
)


def _free_redis_databases() -> tuple[int, int]:
    """Two Redis databases no other deployment on this machine uses, claimed for 2 hours."""
    admin = redis.Redis.from_url(f"{REDIS}/0")
    for number in range(2, 15, 2):
        if admin.set(f"plexus-test-claim:{number}", "1", nx=True, ex=7200):
            return number, number + 1
    raise RuntimeError("No free Redis databases for a test deployment (2..15 are claimed).")


class Deployment:
    """Processes of one deployment; `start_worker` and `kill_worker` change its pool."""

    def __init__(self, folder: Path, env: dict[str, str], workspace: Path) -> None:
        self.folder = folder
        self.env = env
        self.workspace = workspace
        self.workers: dict[str, subprocess.Popen] = {}
        self.daemon: subprocess.Popen | None = None
        self.instance = self._instance()
        self.registry = WorkerRegistry(env["PLEXUS_CELERY_BACKEND"])
        self.launcher = QueuedLauncher(self.instance, workspace)

    def _instance(self) -> dg.DagsterInstance:
        os.environ.update(
            {k: v for k, v in self.env.items() if k.startswith(("PLEXUS_", "DAGSTER_HOME"))}
        )
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        with (self.folder / log).open("w") as out:
            return subprocess.Popen(
                args,
                cwd=self.env["DAGSTER_HOME"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_daemon(self) -> None:
        self.daemon = self._spawn(
            [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace)], "daemon.log"
        )

    def start_worker(
        self, name: str, capabilities: str = "", concurrency: int = 1, timeout: float = 60
    ) -> None:
        args = [str(BIN / "plexus"), "worker", "start", "--name", name]
        args += ["--concurrency", str(concurrency)]
        if capabilities:
            args += ["--capabilities", capabilities]
        self.workers[name] = self._spawn(args, f"worker-{name}.log")
        self.wait(lambda: self.registry.get(name) is not None, timeout, f"worker {name} ready")

    def kill_worker(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signals the worker's whole process group: the worker and its task processes."""
        process = self.workers.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=60)

    def submit(self, job: str, **request: Any) -> str:
        return self.launcher.start(RunRequest(job=job, **request))

    def run(self, run_id: str) -> dg.DagsterRun:
        run = self.instance.get_run_by_id(run_id)
        assert run is not None
        return run

    def wait(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {what}.{self.logs()}")

    def wait_finished(self, run_id: str, timeout: float = 120) -> dg.DagsterRun:
        return self.wait(
            lambda: (run := self.run(run_id)).is_finished and run, timeout, f"run {run_id} to end"
        )

    def logs(self) -> str:
        tails = []
        for path in sorted(self.folder.glob("*.log")):
            tails.append(f"\n--- {path.name}:\n{path.read_text()[-1500:]}")
        return "".join(tails)

    def close(self) -> None:
        self.launcher.close()
        for name in list(self.workers):
            self.kill_worker(name, signal.SIGTERM)
        if self.daemon is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.daemon.pid, signal.SIGTERM)
            self.daemon.wait(timeout=60)
        self.instance.dispose()


@contextlib.contextmanager
def deployment(
    folder: Path,
    extra_env: dict[str, str] | None = None,
    workspace: Path | None = None,
    instance_yaml: str | None = None,
) -> Iterator[Deployment]:
    """A running worker deployment (daemon started, no workers yet) in ``folder``.

    ``instance_yaml`` replaces the deployment's dagster.yaml, e.g. to measure Dagster's own
    launcher on the same database.
    """
    database = f"plexus_workers_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(dbname="postgres", **POSTGRES)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{database}"')
    broker_db, backend_db = _free_redis_databases()
    for number in (broker_db, backend_db):
        redis.Redis.from_url(f"{REDIS}/{number}").flushdb()
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(
        instance_yaml or (PROJECT_ROOT / "deploy" / "workers" / "dagster.yaml").read_text()
    )
    if workspace is None:
        workspace = folder / "workspace.yaml"
        workspace.write_text(TEST_JOBS_WORKSPACE)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLEXUS_POSTGRES_URL": (
            f"postgresql+psycopg2://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/"
            f"{database}"
        ),
        "PLEXUS_CELERY_BROKER": f"{REDIS}/{broker_db}",
        "PLEXUS_CELERY_BACKEND": f"{REDIS}/{backend_db}",
        "PYTHONPATH": str(PROJECT_ROOT),
        **(extra_env or {}),
    }
    saved = dict(os.environ)
    made = Deployment(folder, env, workspace)
    try:
        made.start_daemon()
        yield made
    finally:
        made.close()
        os.environ.clear()
        os.environ.update(saved)
        admin_redis = redis.Redis.from_url(f"{REDIS}/0")
        for number in (broker_db, backend_db):
            redis.Redis.from_url(f"{REDIS}/{number}").flushdb()
        admin_redis.delete(f"plexus-test-claim:{broker_db}")
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
