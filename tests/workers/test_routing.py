"""The worker deployment end to end: dagster-daemon, worker daemons over Redis, Postgres."""

import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from plexus_dagster.keys import WAITING_TAG, WORKER_TAG
from plexus_dagster.tasks.launch import cancel_task
from plexus_dagster.workers.status import worker_rows
from tests.workers.deployment import BIN, Deployment, deployment

pytestmark = pytest.mark.integration


def nap(job: str, seconds: float = 0.0, markers: Path | None = None) -> dict:
    config = {"seconds": seconds, "markers": str(markers or "")}
    return {"ops": {f"{job}_op": {"config": config}}}


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    with deployment(tmp_path_factory.mktemp("pool")) as made:
        made.start_worker("gpu-w", "gpu", concurrency=2)
        made.start_worker("cpu-w", concurrency=2)
        yield made


def starts(pool: Deployment, run_id: str) -> int:
    records = pool.instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_START
    ).records
    return len(records)


def test_each_run_goes_only_to_a_worker_that_can_run_it(pool: Deployment, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    jobs = ["gpu_job" if i % 2 else "plain_job" for i in range(20)]
    run_ids = [pool.submit(job, run_config=nap(job, 0.3, markers)) for job in jobs]

    runs = [pool.wait_finished(run_id, timeout=240) for run_id in run_ids]

    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 20, pool.logs()
    workers = {run.job_name: set() for run in runs}
    for run in runs:
        workers[run.job_name].add(run.tags[WORKER_TAG])
        assert run.tags["plexus/needs"] == ("gpu" if run.job_name == "gpu_job" else "")
        assert starts(pool, run.run_id) == 1
    assert workers["gpu_job"] == {"gpu-w"}
    assert workers["plain_job"] <= {"gpu-w", "cpu-w"}
    assert sorted(path.name for path in markers.iterdir()) == sorted(run_ids)


def started_after(pool: Deployment, run_id: str, since: float) -> float:
    record = pool.instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_START
    ).records[0]
    return record.timestamp - since


def test_runs_that_need_nothing_leave_the_gpu_worker_to_gpu_runs(pool: Deployment) -> None:
    began = time.time()
    plain = [pool.submit("plain_job", run_config=nap("plain_job", 20)) for _ in range(2)]
    pool.wait(
        lambda: all(pool.run(run_id).tags.get(WORKER_TAG) for run_id in plain), 60, "both taken"
    )
    gpu = [pool.submit("gpu_job", run_config=nap("gpu_job", 0)) for _ in range(2)]

    finished = [pool.wait_finished(run_id, timeout=60) for run_id in gpu]

    assert [run.status for run in finished] == [dg.DagsterRunStatus.SUCCESS] * 2
    assert {pool.run(run_id).tags[WORKER_TAG] for run_id in plain} == {"cpu-w"}
    # The GPU runs did not wait for the 20 s runs to end.
    assert max(started_after(pool, run_id, began) for run_id in gpu) < 20
    for run_id in plain:
        assert pool.wait_finished(run_id, timeout=60).status == dg.DagsterRunStatus.SUCCESS


def test_a_run_no_worker_can_take_waits_and_holds_up_no_other(pool: Deployment) -> None:
    waiting = pool.submit("nowhere_job", run_config=nap("nowhere_job"))
    pool.wait(
        lambda: pool.run(waiting).tags.get(WAITING_TAG) == "waiting for a worker with data:nowhere",
        30,
        "the waiting reason",
    )
    other = pool.submit("plain_job", run_config=nap("plain_job"))
    assert pool.wait_finished(other).status == dg.DagsterRunStatus.SUCCESS
    assert pool.run(waiting).status == dg.DagsterRunStatus.QUEUED

    pool.start_worker("data-w", "data:nowhere")
    try:
        finished = pool.wait_finished(waiting, timeout=60)
        assert finished.status == dg.DagsterRunStatus.SUCCESS
        assert finished.tags[WORKER_TAG] == "data-w"
        assert finished.tags[WAITING_TAG] == ""
    finally:
        pool.kill_worker("data-w", signal.SIGTERM)


def test_cancel_ends_a_running_task_canceled_within_5_s_and_frees_its_slot(
    pool: Deployment,
) -> None:
    run_id = pool.submit("gpu_job", run_config=nap("gpu_job", 120))
    pool.wait(lambda: pool.run(run_id).status == dg.DagsterRunStatus.STARTED, 60, "the start")

    began = time.monotonic()
    cancel_task(pool.instance, run_id)
    finished = pool.wait_finished(run_id, timeout=30)
    elapsed = time.monotonic() - began

    assert finished.status == dg.DagsterRunStatus.CANCELED
    assert elapsed < 5, f"canceling took {elapsed:.1f} s"
    rows = {row["name"]: row for row in worker_rows(pool.instance, pool.registry)}
    assert rows["gpu-w"]["running"] == []
    # Both of gpu-w's slots take work again.
    again = [pool.submit("gpu_job", run_config=nap("gpu_job", 1)) for _ in range(2)]
    for other in again:
        assert pool.wait_finished(other, timeout=60).status == dg.DagsterRunStatus.SUCCESS


def test_a_killed_worker_fails_its_run_which_is_retried_on_another(pool: Deployment) -> None:
    pool.start_worker("fragile-a", "data:fragile")
    pool.start_worker("fragile-b", "data:fragile")
    run_id = pool.submit("fragile_job", run_config=nap("fragile_job", 15))
    holder = pool.wait(lambda: pool.run(run_id).tags.get(WORKER_TAG), 60, "a worker to take it")

    killed_at = time.monotonic()
    pool.kill_worker(holder, signal.SIGKILL)
    failed = pool.wait_finished(run_id, timeout=90)
    noticed = time.monotonic() - killed_at

    assert failed.status == dg.DagsterRunStatus.FAILURE
    assert noticed < 60, f"the loss was noticed after {noticed:.0f} s"
    messages = [
        record.event_log_entry.message
        for record in pool.instance.get_records_for_run(run_id).records
    ]
    assert any(f"Worker {holder} stopped sending heartbeats" in m for m in messages)
    retry = pool.wait(
        lambda: pool.instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run_id})),
        60,
        "the retry",
    )[0]
    retried = pool.wait_finished(retry.run_id, timeout=90)
    assert retried.status == dg.DagsterRunStatus.SUCCESS
    survivor = "fragile-b" if holder == "fragile-a" else "fragile-a"
    assert retried.tags[WORKER_TAG] == survivor
    pool.kill_worker(survivor, signal.SIGTERM)


def test_a_heartbeat_lost_for_a_moment_does_not_fail_the_run(pool: Deployment) -> None:
    run_id = pool.submit("gpu_job", run_config=nap("gpu_job", 12))
    pool.wait(lambda: pool.run(run_id).status == dg.DagsterRunStatus.STARTED, 60, "the start")

    pool.registry.remove("gpu-w")  # as a Redis restart would: the next heartbeat writes it again

    finished = pool.wait_finished(run_id, timeout=60)
    assert finished.status == dg.DagsterRunStatus.SUCCESS
    assert not pool.instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))


def test_a_second_worker_with_a_live_workers_name_is_refused(pool: Deployment) -> None:
    refused = subprocess.run(
        [str(BIN / "plexus"), "worker", "start", "--name", "cpu-w"],
        env=pool.env,
        cwd=pool.env["DAGSTER_HOME"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert refused.returncode == 2
    assert "A worker named cpu-w is already alive" in refused.stderr
    assert pool.registry.get("cpu-w") is not None
