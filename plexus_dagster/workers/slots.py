"""Which live worker has a free slot for a run, counted from the runs in flight.

A run holds a slot of the worker that took it (its `WORKER_ID_TAG`) or, until one takes it, of
the worker the run launcher sent it to (its `ASSIGNED_TAG`). The launcher sends each run to one
chosen worker rather than to a queue that several serve: left to Celery, a worker with a GPU
would take runs that any worker can run while a run needing the GPU waited behind them.
"""

from collections import Counter
from collections.abc import Iterable, Sequence

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from plexus_dagster.keys import ASSIGNED_TAG, WORKER_ID_TAG
from plexus_dagster.workers.registry import WorkerInfo

# Every run of the worker deployment carries this tag; its limit is all live slots.
POOL_TAG = "plexus/pool"
POOL = "workers"

# The statuses Dagster's run queue counts as holding a slot.
ACTIVE = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def active_runs(instance: DagsterInstance) -> Sequence[DagsterRun]:
    return instance.get_runs(RunsFilter(statuses=ACTIVE, tags={POOL_TAG: POOL}))


def holder(run: DagsterRun) -> str:
    """The worker incarnation whose slot the run holds; empty while no worker is known."""
    return run.tags.get(WORKER_ID_TAG) or run.tags.get(ASSIGNED_TAG) or ""


def busy_slots(runs: Iterable[DagsterRun]) -> Counter[str]:
    return Counter(h for h in map(holder, runs) if h)


def free_slots(worker: WorkerInfo, busy: Counter[str]) -> int:
    return max(0, worker.concurrency - busy[worker.incarnation])


def choose_worker(
    needs: frozenset[str], workers: Sequence[WorkerInfo], busy: Counter[str]
) -> WorkerInfo | None:
    """The worker to send a run to: one that can run it and has a free slot.

    Of those, the one with the fewest capabilities, so that the workers with rarer ones stay free
    for the runs that need them; then the one with the most free slots.
    """
    eligible = [w for w in workers if w.can_run(needs) and free_slots(w, busy) > 0]
    return min(
        eligible,
        key=lambda w: (len(w.capabilities), -free_slots(w, busy), w.name),
        default=None,
    )


def worker_name(incarnation: str) -> str:
    """The worker name in an incarnation (``name/pid/started``)."""
    return incarnation.rsplit("/", 2)[0]
