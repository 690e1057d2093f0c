"""How fast the worker deployment starts and finishes runs, against Dagster's own launcher.

Part 1: ten trivial runs (``plain_job`` of tests/workers/jobs.py: one op that does nothing), one
after the other, on a warm worker of the worker deployment (PostgreSQL, PlexusRunCoordinator,
PlexusCeleryRunLauncher, one `plexus worker start`), taking turns with ten on Dagster's
QueuedRunCoordinator with its DefaultRunLauncher (a new process per run) on the same kind of
instance, both deployments running side by side. Both coordinators dequeue every second. For
each run the times come from its event log: queued -> running is RUN_ENQUEUED to RUN_START,
queued -> success is RUN_ENQUEUED to RUN_SUCCESS. The medians are compared: the worker
deployment must not be slower on either.

Part 2: the wall time of 8 scorecard evaluations (banking77 and twacs, 4 each, all submitted at
once) over 1 worker and over 2 workers, each with one slot, on the project's code location;
items are loaded and banking77 trained beforehand, untimed.

Needs PostgreSQL and Redis on 127.0.0.1 and the data folder. Prints the figures; exits 1 when
the worker deployment is slower than Dagster's launcher.

    PYTHONPATH=. .venv/bin/python bench/worker_latency.py
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
from tabulate import tabulate

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from plexus_dagster.definitions import build_definitions  # noqa: E402
from plexus_dagster.scorecards.partitions import register_scorecards  # noqa: E402
from plexus_dagster.settings import PlexusSettings  # noqa: E402
from plexus_dagster.tasks.runs import TaskRunner  # noqa: E402
from tests.workers.deployment import Deployment, deployment  # noqa: E402

RUNS = 10
STOCK_INSTANCE = """
telemetry: {enabled: false}
storage:
  postgres:
    postgres_url: {env: PLEXUS_POSTGRES_URL}
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config: {dequeue_interval_seconds: 1}
"""


def event_time(pool: Deployment, run_id: str, kind: dg.DagsterEventType) -> float:
    records = pool.instance.get_records_for_run(run_id, of_type=kind).records
    return records[0].timestamp


def trivial_run(pool: Deployment) -> tuple[float, float]:
    """Seconds from queued to running and to success of one trivial run."""
    run_id = pool.submit("plain_job")
    run = pool.wait_finished(run_id, timeout=120)
    assert run.status == dg.DagsterRunStatus.SUCCESS, pool.logs()
    queued = event_time(pool, run_id, dg.DagsterEventType.RUN_ENQUEUED)
    return (
        event_time(pool, run_id, dg.DagsterEventType.RUN_START) - queued,
        event_time(pool, run_id, dg.DagsterEventType.RUN_SUCCESS) - queued,
    )


def medians(times: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def evaluations(folder: Path, env: dict[str, str], workers: int) -> float:
    with deployment(folder, env, PROJECT / "workspace.yaml") as pool:
        register_scorecards(pool.instance, ["banking77", "twacs"])
        for number in range(workers):
            pool.start_worker(f"w{number}", "data:banking77,data:twacs")
        began = time.monotonic()
        run_ids = [
            pool.submit(
                "evaluation_job",
                partition=scorecard,
                run_config={"ops": {"evaluation_results": {"config": {}}}},
            )
            for scorecard in ["banking77", "twacs"] * 4
        ]
        for run_id in run_ids:
            run = pool.wait_finished(run_id, timeout=900)
            assert run.status == dg.DagsterRunStatus.SUCCESS, pool.logs()
        return time.monotonic() - began


def main() -> int:
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        # Both deployments run side by side and take turns, so that the machine's other load
        # falls on both alike.
        with (
            deployment(folder / "ours") as pool,
            deployment(folder / "stock", instance_yaml=STOCK_INSTANCE) as stock_pool,
        ):
            pool.start_worker("warm")
            for warm_up in (pool, stock_pool):  # untimed
                warm_up.wait_finished(warm_up.submit("plain_job"))
            ours_times, stock_times = [], []
            for _ in range(RUNS):
                ours_times.append(trivial_run(pool))
                stock_times.append(trivial_run(stock_pool))
            ours, stock = medians(ours_times), medians(stock_times)
        print(
            tabulate(
                [
                    ["worker deployment (Celery)", f"{ours[0]:.2f}", f"{ours[1]:.2f}"],
                    ["Dagster DefaultRunLauncher", f"{stock[0]:.2f}", f"{stock[1]:.2f}"],
                ],
                headers=["median of 10 trivial runs, s", "queued->running", "queued->success"],
            )
        )

        storage = folder / "storage"
        settings = PlexusSettings(storage_dir=storage)
        defs = build_definitions(settings)
        with dg.instance_for_test() as instance:
            runner = TaskRunner(defs, instance)
            scorecards = runner.plexus.scorecards()
            runner.register(scorecards)
            runner.ensure_items(["banking77_test", "banking77_train", "twacs"])
            runner.train(scorecards["banking77"])
        env = {"PLEXUS_STORAGE_DIR": str(storage)}
        one = evaluations(folder / "one", env, 1)
        two = evaluations(folder / "two", env, 2)
        print()
        print(
            tabulate(
                [["1 worker", f"{one:.1f}"], ["2 workers", f"{two:.1f}"]],
                headers=["8 evaluations (banking77, twacs)", "wall s"],
            )
        )
        print(f"speed-up with 2 workers: {one / two:.2f}")
    slower = ours[0] > stock[0] or ours[1] > stock[1]
    print("FAIL: the worker deployment is slower" if slower else "OK")
    return 1 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
