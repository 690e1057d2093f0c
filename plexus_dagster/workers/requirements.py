"""What a run needs of the worker that runs it, declared once on the ops.

An op declares its needs in the op tag ``plexus/needs``: ``gpu``, ``data:<dataset>`` or any
other capability, comma-separated. An op whose needs depend on the scorecard it is run for (its
partition) says so with ``plexus/needs-from``, naming what of the scorecard counts: ``scores``
(what its classifiers need), ``source`` and ``train_source`` (access to their data sets). A run
needs the union of the needs of its ops; workers advertise capabilities, and a worker may take a
run when the run's needs are a subset of them.

Every need set has one Celery queue. A worker listens on the queue of each subset of its
capabilities, so that routing is exact: a run reaches only workers that can run it. A worker also
has a queue of its own, where the run launcher sends the runs it picked that worker for.
"""

import itertools
import os
import re
from collections.abc import Iterable, Mapping

from plexus_dagster.keys import NEEDS_TAG
from plexus_dagster.scorecards.classifiers import classifier_needs
from plexus_dagster.scorecards.models import CAPABILITY_PATTERN as SCORE_CAPABILITY_PATTERN
from plexus_dagster.scorecards.models import ScorecardConfig
from plexus_dagster.sources.models import SourceConfig
from plexus_dagster.workers import k8s

# Op tag: which parts of the run's scorecard add to its needs (scores, source, train_source).
NEEDS_FROM_TAG = "plexus/needs-from"
NEEDS_FROM = ("scores", "source", "train_source")

GPU = "gpu"
DATA_PREFIX = "data:"
CAPABILITY_PATTERN = re.compile(SCORE_CAPABILITY_PATTERN)

# Queue names: "plexus" for runs that need nothing, "plexus.<need>+<need>" otherwise.
QUEUE_PREFIX = "plexus"
# A worker listens on one queue per subset of its capabilities: 2**10 queues at most.
MAX_CAPABILITIES = 10
# RabbitMQ refuses longer queue names.
MAX_QUEUE_NAME = 255


class RequirementError(ValueError):
    """A need or capability is malformed, or a worker declares too many."""


def check_capability(name: str) -> str:
    if not CAPABILITY_PATTERN.match(name):
        raise RequirementError(
            f"{name!r} is not a valid capability: use lower-case letters, digits and . _ : -, "
            "e.g. gpu or data:banking77."
        )
    return name


def parse_needs(value: str | None) -> frozenset[str]:
    """The needs written in a tag value; an empty or missing value needs nothing."""
    if not value:
        return frozenset()
    return frozenset(check_capability(part.strip()) for part in value.split(",") if part.strip())


def format_needs(needs: Iterable[str]) -> str:
    return ",".join(sorted(set(needs)))


def data_need(dataset: str) -> str:
    return f"{DATA_PREFIX}{dataset}"


def source_dataset(source: SourceConfig) -> str:
    """The data set a source reads: its ``dataset``, else the top folder of its path, else its
    name."""
    if source.dataset:
        return source.dataset
    if source.path and not source.path.startswith("/"):
        parts = source.path.split("/")
        if len(parts) > 1:
            return parts[0].lower()
    return source.name


def queue_name(needs: Iterable[str]) -> str:
    ordered = sorted(set(needs))
    return f"{QUEUE_PREFIX}.{'+'.join(ordered)}" if ordered else QUEUE_PREFIX


def worker_queue(name: str) -> str:
    """The queue of one worker alone: the run launcher sends it the runs it chose it for."""
    return f"{QUEUE_PREFIX}-worker.{name}"


def queue_needs(queue: str) -> frozenset[str]:
    """The needs a queue name stands for; the inverse of `queue_name`."""
    if queue == QUEUE_PREFIX:
        return frozenset()
    prefix = f"{QUEUE_PREFIX}."
    if not queue.startswith(prefix):
        raise RequirementError(f"{queue!r} is not a plexus queue")
    return frozenset(queue[len(prefix) :].split("+"))


def worker_queues(capabilities: Iterable[str]) -> list[str]:
    """The queue of every need set a worker with ``capabilities`` can serve."""
    caps = sorted({check_capability(c) for c in capabilities})
    if len(caps) > MAX_CAPABILITIES:
        raise RequirementError(
            f"A worker can declare at most {MAX_CAPABILITIES} capabilities; got {len(caps)} "
            f"({', '.join(caps)}). Run several workers with fewer each."
        )
    longest = queue_name(caps)
    if len(longest.encode()) > MAX_QUEUE_NAME:
        raise RequirementError(
            f"The queue of all {len(caps)} capabilities together, {longest!r}, is "
            f"{len(longest.encode())} bytes long; brokers allow {MAX_QUEUE_NAME}. Use shorter "
            "capability names or fewer capabilities per worker."
        )
    subsets = itertools.chain.from_iterable(
        itertools.combinations(caps, size) for size in range(len(caps) + 1)
    )
    return [queue_name(subset) for subset in subsets]


def can_run(needs: Iterable[str], capabilities: Iterable[str]) -> bool:
    return set(needs) <= set(capabilities)


def op_tags(needs: Iterable[str] = (), *, needs_from: Iterable[str] = ()) -> dict[str, str]:
    """The op tags declaring what an op needs."""
    tags = {NEEDS_TAG: format_needs(check_capability(need) for need in needs)}
    sources = list(needs_from)
    unknown = set(sources) - set(NEEDS_FROM)
    if unknown:
        raise RequirementError(f"unknown needs-from {sorted(unknown)}; use {NEEDS_FROM}")
    if sources:
        tags[NEEDS_FROM_TAG] = ",".join(sources)
    if os.environ.get(k8s.CONFIG_ENV):
        # On Kubernetes, step pods are placed by their op's tags.
        tags.update(k8s.k8s_tags(parse_needs(tags[NEEDS_TAG])))
    return tags


def scorecard_needs(
    scorecard: ScorecardConfig, sources: Mapping[str, SourceConfig], parts: Iterable[str]
) -> frozenset[str]:
    """What ``parts`` of a scorecard (see `NEEDS_FROM`) need."""
    needs: set[str] = set()
    for part in parts:
        if part == "scores":
            for score in scorecard.scores:
                needs |= classifier_needs(score.classifier, score.parameters)
                needs |= set(score.needs)
        else:
            name = scorecard.source if part == "source" else scorecard.train_source
            if name and name in sources:
                needs.add(data_need(source_dataset(sources[name])))
    return frozenset(needs)


def ops_needs(op_tag_sets: Iterable[Mapping[str, str]]) -> tuple[frozenset[str], set[str]]:
    """The union of the ops' own needs, and the parts of the scorecard their needs come from."""
    needs: set[str] = set()
    parts: set[str] = set()
    for tags in op_tag_sets:
        needs |= parse_needs(tags.get(NEEDS_TAG))
        parts |= {p for p in tags.get(NEEDS_FROM_TAG, "").split(",") if p}
    return frozenset(needs), parts
