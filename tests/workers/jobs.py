"""A code location of small jobs with known needs, for the worker deployment's tests.

Each run writes a marker file named after its run id, created exclusively: a run executed
twice fails the second time, and the test sees it.
"""

import os
import time
from pathlib import Path

import dagster as dg

from plexus_dagster.workers.requirements import op_tags


class NapConfig(dg.Config):
    seconds: float = 0.0
    markers: str = ""


def nap_job(name: str, needs: list[str]) -> dg.JobDefinition:
    @dg.op(name=f"{name}_op", tags=op_tags(needs))
    def nap(context: dg.OpExecutionContext, config: NapConfig) -> None:
        if config.markers:
            marker = Path(config.markers) / context.run_id
            with marker.open("x") as out:  # raises when the run was executed before
                out.write(f"{os.getpid()}\n")
        deadline = time.monotonic() + config.seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)

    @dg.job(name=name, executor_def=dg.in_process_executor)
    def job() -> None:
        nap()

    return job


defs = dg.Definitions(
    jobs=[
        nap_job("plain_job", []),
        nap_job("gpu_job", ["gpu"]),
        nap_job("nowhere_job", ["data:nowhere"]),
        nap_job("fragile_job", ["data:fragile"]),
    ]
)
