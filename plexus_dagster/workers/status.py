"""What `plexus workers list` shows: each live worker and the tasks it runs now."""

import time
from dataclasses import asdict
from typing import Any

import dagster as dg

from plexus_dagster.keys import WORKER_TAG
from plexus_dagster.workers.registry import WorkerRegistry

ACTIVE = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def worker_rows(instance: dg.DagsterInstance, registry: WorkerRegistry) -> list[dict[str, Any]]:
    now = time.time()
    rows = []
    for worker in registry.live():
        running = instance.get_runs(dg.RunsFilter(statuses=ACTIVE, tags={WORKER_TAG: worker.name}))
        rows.append(
            {
                **asdict(worker),
                "running": [run.run_id for run in running],
                "heartbeat_age": round(now - worker.heartbeat_at, 1),
            }
        )
    return rows
