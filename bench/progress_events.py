"""What each kind of Dagster write costs when used for live task progress.

One asset, materialized with ``execute_in_process`` against a real instance, writes N progress
snapshots of one kind per run; every snapshot is the same ~600-byte JSON document (a task's
stage, percent and ETA plus a list of five stage dicts). The kinds, one run each:

- ``log``: a structured log message, ``context.log.info("Score: 1200/3080 items ...
  plexus-progress:{json}")``.
- ``observation``: ``context.log_event(AssetObservation(...))`` with the snapshot as JSON
  metadata, on the asset's own key.
- ``engine_event``: an engine event carrying the snapshot as JSON metadata. Dagster has no
  public API for it; the bench calls the internal ``DagsterEvent.engine_event`` only to compare.
- ``run_tags``: ``instance.add_run_tags`` with ``plexus/stage``, ``plexus/percent`` and
  ``plexus/eta`` taken from the snapshot (tags cannot hold the whole document usefully).

A baseline run of the same asset writes nothing. For each kind the first table gives the mean
and p95 milliseconds of one write as seen by the asset, the event-log rows and serialized bytes
the run stored beyond the baseline, and how many observations the asset's own history gained
(``instance.fetch_observations``), which the asset's page lists and plots from then on. For
run tags the bytes are those of the run row, which every write rewrites whole.

The second table is the cost of reading each run back, as a watcher would, repeated
``--reads`` times: reloading every record of the run, reading only the last 10 records from a
cursor (``get_records_for_run(run_id, cursor=...)``), and reading only the latest snapshot
where the storage can select it (by event type, or the run's tags).

Storage is SQLite in a temporary DAGSTER_HOME, or with ``--postgres`` a fresh database on the
PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth), dropped at the end. Console output
of the runs goes to a file in the temporary folder, so it is paid for but not shown.

    .venv/bin/python bench/progress_events.py [--writes N] [--reads R] [--postgres]
"""

import argparse
import contextlib
import json
import math
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2

# Internal Dagster API, imported only so the bench can compare engine events with the public
# kinds; nothing outside this bench should depend on it.
from dagster._core.events import DagsterEvent, EngineEventData
from psycopg2 import sql
from tabulate import tabulate

ASSET_KEY = dg.AssetKey(["bench", "progress"])
MARKER = "plexus-progress:"
ITEMS = 3080
STAGES = ("load items", "score", "labels", "metrics", "write results")
TAIL = 10
RECORD_LIMIT = 100_000
OBSERVATION_PAGE = 10_000
PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"

Payload = dict[str, Any]
Writer = Callable[[dg.AssetExecutionContext, Payload], None]


def progress_payload(index: int, writes: int) -> Payload:
    """The ``index``-th of ``writes`` snapshots of a five-stage task moving from 0 to 100%."""
    done = (index + 1) / writes
    stages: list[Payload] = []
    current = STAGES[-1]
    for order, name in enumerate(STAGES):
        share = min(max(done * len(STAGES) - order, 0.0), 1.0)
        status = "done" if share >= 1.0 else "running" if share > 0.0 else "pending"
        if status == "running":
            current = name
        stages.append(
            {
                "name": name,
                "total": ITEMS,
                "processed": round(share * ITEMS),
                "status": status,
                "per_second": 41.7 if status == "running" else None,
                "eta": round((1.0 - share) * ITEMS / 41.7, 1),
            }
        )
    return {
        "stage": current,
        "percent": round(done * 100, 1),
        "eta": round((1.0 - done) * len(STAGES) * ITEMS / 41.7, 1),
        "updated": round(time.time(), 3),
        "stages": stages,
    }


def summary(payload: Payload) -> str:
    """The human half of a snapshot, e.g. ``Score: 1200/3080 items``."""
    stage = next(s for s in payload["stages"] if s["name"] == payload["stage"])
    return f"{stage['name'].capitalize()}: {stage['processed']}/{stage['total']} items"


def write_nothing(context: dg.AssetExecutionContext, payload: Payload) -> None:
    """The baseline: no write at all."""


def write_log(context: dg.AssetExecutionContext, payload: Payload) -> None:
    """A structured log message: readable text, then the marker and the JSON snapshot."""
    context.log.info(f"{summary(payload)}, {payload['percent']}% {MARKER}{json.dumps(payload)}")


def write_observation(context: dg.AssetExecutionContext, payload: Payload) -> None:
    """An observation of the asset being computed, with the snapshot as JSON metadata."""
    context.log_event(
        dg.AssetObservation(
            asset_key=ASSET_KEY, metadata={"progress": dg.MetadataValue.json(payload)}
        )
    )


def write_engine_event(context: dg.AssetExecutionContext, payload: Payload) -> None:
    """An engine event of the step, with the snapshot as JSON metadata."""
    # Internal Dagster API (the step execution context and DagsterEvent.engine_event), used only
    # to compare its cost with the public kinds.
    DagsterEvent.engine_event(
        context.get_step_execution_context(),
        summary(payload),
        EngineEventData(metadata={"progress": dg.MetadataValue.json(payload)}),
    )


def write_run_tags(context: dg.AssetExecutionContext, payload: Payload) -> None:
    """Stage, percent and ETA of the snapshot as tags of the run."""
    context.instance.add_run_tags(
        context.run.run_id,
        {
            "plexus/stage": str(payload["stage"]),
            "plexus/percent": f"{payload['percent']:.0f}",
            "plexus/eta": f"{payload['eta']:.0f}",
        },
    )


WRITERS: Mapping[str, Writer] = {
    "none": write_nothing,
    "log": write_log,
    "observation": write_observation,
    "engine_event": write_engine_event,
    "run_tags": write_run_tags,
}


class ProgressConfig(dg.Config):
    kind: str
    writes: int


@dg.asset(key=ASSET_KEY)
def progress(context: dg.AssetExecutionContext, config: ProgressConfig) -> list[float]:
    """Writes ``config.writes`` snapshots of ``config.kind``; the seconds each write took."""
    write = WRITERS[config.kind]
    seconds: list[float] = []
    for index in range(config.writes):
        payload = progress_payload(index, config.writes)
        started = time.perf_counter()
        write(context, payload)
        seconds.append(time.perf_counter() - started)
    return seconds


@dataclass(frozen=True)
class WriteRun:
    """One run of the asset and what it left in storage."""

    kind: str
    run_id: str
    write_seconds: list[float]
    run_seconds: float
    rows: int
    stored_bytes: int
    run_bytes: int
    observations: int


def observation_count(instance: dg.DagsterInstance) -> int:
    """Observations in the asset's history, paged as the storage allows at most 10,000 a call."""
    count = 0
    cursor: str | None = None
    while True:
        page = instance.fetch_observations(ASSET_KEY, limit=OBSERVATION_PAGE, cursor=cursor)
        count += len(page.records)
        if not page.has_more:
            return count
        cursor = page.cursor


def run_records(instance: dg.DagsterInstance, run_id: str) -> list[dg.EventLogRecord]:
    """Every event-log record of the run."""
    return list(instance.get_records_for_run(run_id, limit=RECORD_LIMIT).records)


def run_kind(instance: dg.DagsterInstance, kind: str, writes: int, console: Path) -> WriteRun:
    """Materializes the asset once, writing ``writes`` snapshots of ``kind``."""
    observations_before = observation_count(instance)
    started = time.perf_counter()
    with console.open("a") as stream, contextlib.redirect_stderr(stream):
        result = dg.materialize(
            [progress],
            instance=instance,
            resources={"io_manager": dg.mem_io_manager},
            run_config=dg.RunConfig(
                ops={"bench__progress": ProgressConfig(kind=kind, writes=writes)}
            ),
        )
    run_seconds = time.perf_counter() - started
    records = run_records(instance, result.run_id)
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    return WriteRun(
        kind=kind,
        run_id=result.run_id,
        write_seconds=result.asset_value(ASSET_KEY),
        run_seconds=run_seconds,
        rows=len(records),
        stored_bytes=sum(len(dg.serialize_value(r.event_log_entry)) for r in records),
        run_bytes=len(dg.serialize_value(run)),
        observations=observation_count(instance) - observations_before,
    )


def p95(values: list[float]) -> float:
    """The nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


def millis(values: list[float]) -> tuple[str, str]:
    """Mean and p95 of ``values`` seconds, in milliseconds."""
    if not values:
        return "-", "-"
    return f"{statistics.fmean(values) * 1000:.3f}", f"{p95(values) * 1000:.3f}"


def timed(action: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``action``."""
    seconds: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


def read_all(instance: dg.DagsterInstance, run_id: str) -> None:
    """A watcher that reloads the whole run."""
    run_records(instance, run_id)


def read_tail(instance: dg.DagsterInstance, run_id: str, cursor: str) -> None:
    """A watcher that reads only what came after its cursor."""
    records = instance.get_records_for_run(run_id, cursor=cursor, limit=RECORD_LIMIT).records
    assert len(records) == TAIL


def event_metadata(entry: dg.EventLogEntry) -> Mapping[str, dg.MetadataValue]:
    """The metadata of an observation or engine event, empty for anything else."""
    if entry.asset_observation is not None:
        return entry.asset_observation.metadata
    data = entry.dagster_event.event_specific_data if entry.dagster_event else None
    return data.metadata if isinstance(data, EngineEventData) else {}


def latest_reader(instance: dg.DagsterInstance, kind: str, run_id: str) -> Callable[[], object]:
    """Reads the latest snapshot of a ``kind`` run the way its storage allows."""
    event_types = {
        "observation": dg.DagsterEventType.ASSET_OBSERVATION,
        "engine_event": dg.DagsterEventType.ENGINE_EVENT,
    }

    def latest_event() -> object:
        records = instance.get_records_for_run(
            run_id, of_type=event_types[kind], limit=5, ascending=False
        ).records
        return next(r for r in records if "progress" in event_metadata(r.event_log_entry))

    def latest_tags() -> object:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        return {k: v for k, v in run.tags.items() if k.startswith("plexus/")}

    return latest_tags if kind == "run_tags" else latest_event


def write_table(runs: list[WriteRun], writes: int) -> str:
    """The cost of writing, one row per kind, relative to the baseline run."""
    baseline = runs[0]
    rows: list[list[object]] = []
    for run in runs:
        mean, high = millis(run.write_seconds)
        extra_rows = run.rows - baseline.rows
        extra_bytes = run.stored_bytes - baseline.stored_bytes
        per_write = f"{run.run_bytes}*" if run.kind == "run_tags" else f"{extra_bytes / writes:.0f}"
        rows.append(
            [
                run.kind,
                mean,
                high,
                f"{run.run_seconds:.2f}",
                run.rows,
                extra_rows,
                f"{extra_rows / writes:.2f}",
                "-" if run.kind == "none" else per_write,
                run.observations,
            ]
        )
    return tabulate(
        rows,
        headers=[
            "kind",
            "mean ms",
            "p95 ms",
            "run s",
            "rows",
            "rows +",
            "rows/write",
            "bytes/write",
            "asset obs. +",
        ],
        disable_numparse=True,
        colalign=("left",) + ("right",) * 8,
    )


def read_table(instance: dg.DagsterInstance, runs: list[WriteRun], repeats: int) -> str:
    """The cost of reading each run back, as a watcher would."""
    rows: list[list[object]] = []
    for run in runs:
        all_mean, all_high = millis(timed(partial(read_all, instance, run.run_id), repeats))
        cursor = instance.get_records_for_run(run.run_id, limit=run.rows - TAIL).cursor
        tail_mean, tail_high = millis(
            timed(partial(read_tail, instance, run.run_id, cursor), repeats)
        )
        latest_mean, latest_high = (
            millis(timed(latest_reader(instance, run.kind, run.run_id), repeats))
            if run.kind in ("observation", "engine_event", "run_tags")
            else ("-", "-")
        )
        rows.append(
            [
                run.kind,
                run.rows,
                all_mean,
                all_high,
                tail_mean,
                tail_high,
                latest_mean,
                latest_high,
            ]
        )
    return tabulate(
        rows,
        headers=[
            "run",
            "rows",
            "reload all ms",
            "p95",
            f"cursor, {TAIL} new ms",
            "p95",
            "latest only ms",
            "p95",
        ],
        disable_numparse=True,
        colalign=("left",) + ("right",) * 7,
    )


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty database on the local PostgreSQL, dropped on exit."""
    name = f"plexus_bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield name
        finally:
            with admin.cursor() as cursor:
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    finally:
        admin.close()


@contextlib.contextmanager
def bench_instance(folder: Path, use_postgres: bool) -> Iterator[tuple[dg.DagsterInstance, str]]:
    """An instance in ``folder`` on SQLite or a fresh PostgreSQL database, and its description."""
    with contextlib.ExitStack() as stack:
        overrides: dict[str, Any] = {}
        storage = "SQLite in a temporary DAGSTER_HOME"
        if use_postgres:
            database = stack.enter_context(postgres_database())
            overrides["storage"] = {
                "postgres": {
                    "postgres_db": {
                        "hostname": PG_HOST,
                        "port": PG_PORT,
                        "username": PG_USER,
                        "db_name": database,
                        "scheme": "postgresql+psycopg2",
                    }
                }
            }
            storage = f"PostgreSQL {PG_HOST}:{PG_PORT}/{database}"
        instance = stack.enter_context(
            dg.instance_for_test(temp_dir=str(folder), overrides=overrides)
        )
        yield instance, storage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=500, help="snapshots written per run")
    parser.add_argument("--reads", type=int, default=20, help="repeats of each read")
    parser.add_argument("--postgres", action="store_true", help="use the local PostgreSQL")
    args = parser.parse_args()
    if args.writes < TAIL or args.reads < 1:
        parser.error(f"--writes must be at least {TAIL} and --reads at least 1")

    sizes = [len(json.dumps(progress_payload(i, args.writes))) for i in range(args.writes)]
    with (
        tempfile.TemporaryDirectory(prefix="plexus-bench-") as folder,
        bench_instance(Path(folder), args.postgres) as (instance, storage),
    ):
        console = Path(folder) / "console.log"
        runs = [run_kind(instance, kind, args.writes, console) for kind in WRITERS]
        reads = read_table(instance, runs, args.reads)

    print(
        f"{storage}: {args.writes} writes per run, snapshots of "
        f"{min(sizes)}-{max(sizes)} bytes of JSON"
    )
    print()
    print(write_table(runs, args.writes))
    print("* run_tags: bytes of the run row, rewritten whole by every write")
    print()
    print(f"reading each run back, {args.reads} times each")
    print(reads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
