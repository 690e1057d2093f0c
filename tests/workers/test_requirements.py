"""Needs declared on ops and scores, and the queues and run tags they make."""

import time
from collections import Counter

import dagster as dg
import pytest
from dagster._core.utils import make_new_run_id

from plexus_dagster.definitions import build_definitions
from plexus_dagster.keys import ASSIGNED_TAG, WORKER_ID_TAG
from plexus_dagster.resources import PlexusResource
from plexus_dagster.settings import PlexusSettings
from plexus_dagster.workers.coordinator import configured_source, queue_slots, run_needs
from plexus_dagster.workers.registry import Absences, WorkerInfo
from plexus_dagster.workers.requirements import (
    MAX_CAPABILITIES,
    RequirementError,
    can_run,
    op_tags,
    ops_needs,
    parse_needs,
    queue_name,
    queue_needs,
    scorecard_needs,
    worker_queues,
)
from plexus_dagster.workers.slots import busy_slots, choose_worker, free_slots, worker_name


def test_a_worker_serves_the_queue_of_every_subset_of_its_capabilities() -> None:
    queues = worker_queues(["gpu", "data:banking77"])

    assert sorted(queues) == sorted(
        ["plexus", "plexus.gpu", "plexus.data:banking77", "plexus.data:banking77+gpu"]
    )
    assert all(can_run(queue_needs(queue), ["gpu", "data:banking77"]) for queue in queues)
    assert queue_name({"gpu", "data:x"}) not in worker_queues(["gpu"])


def test_bad_capabilities_are_refused_with_the_fix() -> None:
    with pytest.raises(RequirementError, match="not a valid capability"):
        parse_needs("gpu,Data Set")
    too_many = [f"data:set{i}" for i in range(MAX_CAPABILITIES + 1)]
    with pytest.raises(RequirementError, match="Run several workers"):
        worker_queues(too_many)
    with pytest.raises(RequirementError, match="not a valid capability"):
        parse_needs("data:")
    long_names = [f"data:customer_support_dataset_{i:02}" for i in range(MAX_CAPABILITIES)]
    with pytest.raises(RequirementError, match="brokers allow 255"):
        worker_queues(long_names)


def test_a_worker_is_judged_lost_only_once_missing_for_the_grace() -> None:
    absences = Absences(grace=0.2)

    assert not absences.lost("run", missing=True)
    assert not absences.lost("run", missing=False)  # back at the next heartbeat
    assert not absences.lost("run", missing=True)
    time.sleep(0.25)
    assert absences.lost("run", missing=True)


def test_a_run_needs_the_union_of_its_ops_needs() -> None:
    needs, parts = ops_needs([op_tags(["data:crm"]), op_tags(["gpu"], needs_from=["scores"]), {}])

    assert needs == {"data:crm", "gpu"}
    assert parts == {"scores"}


def test_the_gpu_scorecard_needs_a_gpu_and_its_data_set(settings: PlexusSettings) -> None:
    plexus = PlexusResource.from_settings(settings)
    scorecards = plexus.scorecards()
    sources = plexus.sources()

    gpu = scorecard_needs(scorecards["banking77_gpu"].config, sources, ["scores", "source"])
    cpu = scorecard_needs(scorecards["banking77"].config, sources, ["scores", "source"])

    assert gpu == {"gpu", "data:banking77"}
    assert cpu == {"data:banking77"}


def test_runs_take_their_needs_from_the_job_and_the_partition(settings: PlexusSettings) -> None:
    defs = build_definitions(settings)
    job = defs.resolve_job_def("evaluation_job")
    with dg.instance_for_test() as instance:
        for scorecard, expected in [
            ("banking77_gpu", {"gpu", "data:banking77"}),
            ("twacs", {"data:twacs"}),
        ]:
            run = instance.create_run_for_job(
                job, tags={"dagster/partition": scorecard}, run_config={}
            )
            assert run_needs(instance, run) == expected
        items = instance.create_run_for_job(defs.resolve_job_def("items_job"), run_config={})
        assert run_needs(instance, items) == {"data:banking77", "data:twacs"}


def test_a_configured_source_replaces_the_scorecards_own() -> None:
    config = {"ops": {"predictions": {"config": {"source": "banking77_train"}}}}

    assert configured_source(config) == "banking77_train"
    assert configured_source({"ops": {"predictions": {"config": {}}}}) is None


def test_slots_count_only_workers_that_can_run_the_queue() -> None:
    workers = [
        WorkerInfo("a", "h", 1, ["gpu"], 2),
        WorkerInfo("b", "h", 2, [], 3),
    ]

    assert queue_slots(frozenset(), workers) == 5
    assert queue_slots(frozenset({"gpu"}), workers) == 2
    assert queue_slots(frozenset({"gpu", "data:x"}), workers) == 0


def _run_on(incarnation: str = "", assigned: str = "") -> dg.DagsterRun:
    tags = {WORKER_ID_TAG: incarnation, ASSIGNED_TAG: assigned}
    return dg.DagsterRun(job_name="plain_job", run_id=make_new_run_id(), tags=tags)


def test_a_run_holds_the_slot_of_the_worker_that_took_it_or_was_sent_it() -> None:
    gpu = WorkerInfo("gpu-w", "h", 1, ["gpu"], 2, started_at=1.0)
    runs = [_run_on(gpu.incarnation), _run_on(assigned=gpu.incarnation), _run_on()]

    busy = busy_slots(runs)

    assert busy == {gpu.incarnation: 2}
    assert free_slots(gpu, busy) == 0
    assert worker_name(gpu.incarnation) == "gpu-w"


def test_a_run_goes_to_the_free_worker_with_the_fewest_capabilities() -> None:
    gpu = WorkerInfo("gpu-w", "h", 1, ["data:x", "gpu"], 1, started_at=1.0)
    data = WorkerInfo("data-w", "h", 2, ["data:x"], 1, started_at=1.0)
    plain = WorkerInfo("plain-w", "h", 3, [], 2, started_at=1.0)
    workers = [gpu, data, plain]

    assert choose_worker(frozenset(), workers, Counter()) == plain
    assert choose_worker(frozenset({"data:x"}), workers, Counter()) == data
    assert choose_worker(frozenset({"gpu"}), workers, Counter()) == gpu
    # Once the plainer workers are full, a run that needs nothing takes what is left.
    full = Counter({plain.incarnation: 2, data.incarnation: 1})
    assert choose_worker(frozenset(), workers, full) == gpu
    assert choose_worker(frozenset({"gpu"}), workers, Counter({gpu.incarnation: 1})) is None
    assert choose_worker(frozenset({"data:y"}), workers, Counter()) is None
