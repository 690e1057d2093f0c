"""What live progress costs an evaluation of 100,000 items, in time and in event-log rows.

Evaluates N items (the bench source of bench/evaluation_throughput.py: the Banking77 test texts
repeated, each with its own id) with the banking77 scorecard through the evaluation job, with
progress reporting on (the default) and off (``report_progress: False``, which writes no
progress log messages and no run tags), in one process on one instance. Training, loading the
items and a small untimed warm-up evaluation come first.

The two are run ``--repeats`` times each, alternating, the first of each pair swapping every
repeat, and the best wall time of each (``TaskRunner.evaluate``) is compared. For every run the
script also takes the CPU seconds of this process (``time.process_time``, which the rest of
the machine's load disturbs less than the wall time; shown, not judged) and counts the rows of
its event log, the progress rows among them (log messages carrying ``plexus-progress:``) and
the calls to ``DagsterInstance.add_run_tags`` (counted by wrapping that method of the
instance).

The requirements:

- the best time with reporting on is at most 1.03 times the best time with it off;
- every run with reporting on wrote at most ``2 * stages + run seconds + 10`` progress rows,
  the run's seconds being the end time minus the start time of its run record.

A run with reporting off that writes progress rows or run tags, or a run that scores another
number of items, stops the script with an error. The script prints its figures and exits 1
when a requirement fails, 0 when both hold.

Storage is SQLite in a temporary DAGSTER_HOME, or with ``--postgres`` a fresh database on the
PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth), dropped at the end.

    .venv/bin/python bench/progress_overhead.py [--items N] [--repeats R] [--postgres]
"""

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from tabulate import tabulate

from plexus_dagster import keys
from plexus_dagster.definitions import build_definitions
from plexus_dagster.evaluations.assets import STAGES
from plexus_dagster.tasks.runs import TaskRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluation_throughput import BENCH_SOURCE, SCORECARD, prepare
from progress_events import bench_instance

MAX_RATIO = 1.03
SLACK_ROWS = 10
WARM_UP_ITEMS = 1000
RECORD_LIMIT = 1_000_000


@dataclass(frozen=True)
class Measurement:
    """One evaluation run and what it wrote."""

    report_progress: bool
    seconds: float
    cpu_seconds: float
    run_seconds: float
    items: int
    rows: int
    progress_rows: int
    tag_writes: int
    stage_tag: str | None

    @property
    def bound(self) -> float:
        return 2 * len(STAGES) + self.run_seconds + SLACK_ROWS

    @property
    def within_bound(self) -> bool:
        return self.progress_rows <= self.bound


class TagWriteCounter:
    """Counts ``add_run_tags`` calls of one instance by run, passing each call on."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.counts: Counter[str] = Counter()
        self._add_run_tags: Callable[[str, Mapping[str, str]], None] = instance.add_run_tags
        instance.add_run_tags = self._counted  # type: ignore[method-assign]

    def _counted(self, run_id: str, new_tags: Mapping[str, str]) -> None:
        self.counts[run_id] += 1
        self._add_run_tags(run_id, new_tags)


def is_progress_row(record: dg.EventLogRecord) -> bool:
    entry = record.event_log_entry
    return entry.dagster_event is None and keys.PROGRESS_MARK in entry.user_message


def measure(runner: TaskRunner, counter: TagWriteCounter, report_progress: bool) -> Measurement:
    """Evaluates the bench scorecard once and counts what its run wrote."""
    scorecard = runner.plexus.scorecards()[SCORECARD]
    started = time.perf_counter()
    cpu_started = time.process_time()
    result, summary = runner.evaluate(scorecard, options={"report_progress": report_progress})
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    assert summary is not None

    instance = runner.instance
    records = instance.get_records_for_run(result.run_id, limit=RECORD_LIMIT).records
    run = instance.get_run_record_by_id(result.run_id)
    assert run is not None
    if run.start_time is not None and run.end_time is not None:
        run_seconds = run.end_time - run.start_time
    else:
        run_seconds = seconds
    return Measurement(
        report_progress=report_progress,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        run_seconds=run_seconds,
        items=int(summary["items"]),
        rows=len(records),
        progress_rows=sum(is_progress_row(record) for record in records),
        tag_writes=counter.counts[result.run_id],
        stage_tag=run.dagster_run.tags.get(keys.STAGE_TAG),
    )


def run_table(runs: list[Measurement]) -> str:
    return tabulate(
        [
            [
                "on" if run.report_progress else "off",
                f"{run.seconds:.2f}",
                f"{run.cpu_seconds:.2f}",
                f"{run.run_seconds:.2f}",
                run.rows,
                run.progress_rows,
                f"{run.bound:.0f}" if run.report_progress else "",
                run.tag_writes,
                run.stage_tag or "",
            ]
            for run in runs
        ],
        headers=[
            "progress",
            "wall s",
            "cpu s",
            "run s",
            "rows",
            "progress rows",
            "bound",
            "tag writes",
            keys.STAGE_TAG,
        ],
        disable_numparse=True,
        colalign=("left", *("right",) * 7, "left"),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="items to evaluate")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, best time kept")
    parser.add_argument("--postgres", action="store_true", help="use the local PostgreSQL")
    args = parser.parse_args()
    if args.items < 1 or args.repeats < 1:
        parser.error("--items and --repeats must be at least 1")

    with (
        tempfile.TemporaryDirectory(prefix="plexus-bench-") as folder,
        bench_instance(Path(folder), args.postgres) as (instance, storage),
    ):
        root = Path(folder) / "plexus"
        root.mkdir()
        settings = prepare(root, args.items)
        counter = TagWriteCounter(instance)
        runner = TaskRunner(build_definitions(settings), instance, announce=lambda message: None)
        scorecards = runner.plexus.scorecards()
        runner.register(scorecards)
        runner.ensure_items([BENCH_SOURCE])
        runner.train(scorecards[SCORECARD])
        runner.evaluate(
            scorecards[SCORECARD],
            sample_size=min(WARM_UP_ITEMS, args.items),
            options={"report_progress": False},
        )

        runs: list[Measurement] = []
        for repeat in range(args.repeats):
            order = (True, False) if repeat % 2 == 0 else (False, True)
            runs.extend(measure(runner, counter, report_progress) for report_progress in order)

    counts = {run.items for run in runs}
    if counts != {args.items}:
        raise SystemExit(f"evaluated {sorted(counts)} items instead of {args.items}")
    on = [run for run in runs if run.report_progress]
    off = [run for run in runs if not run.report_progress]
    if any(run.progress_rows or run.tag_writes or run.stage_tag for run in off):
        raise SystemExit("a run with reporting off wrote progress rows or run tags")

    best_on = min(on, key=lambda run: run.seconds)
    best_off = min(off, key=lambda run: run.seconds)
    ratio = best_on.seconds / best_off.seconds
    cpu_ratio = min(run.cpu_seconds for run in on) / min(run.cpu_seconds for run in off)
    time_verdict = "PASS" if ratio <= MAX_RATIO else "FAIL"
    rows_verdict = "PASS" if all(run.within_bound for run in on) else "FAIL"
    tightest = max(on, key=lambda run: run.progress_rows - run.bound)

    print(
        f"{storage}: scorecard {SCORECARD}, {args.items} items, {len(STAGES)} stages, "
        f"{args.repeats} runs each, alternating"
    )
    print()
    print(run_table(runs))
    print()
    for name, best in (("on", best_on), ("off", best_off)):
        print(
            f"reporting {name + ':':4} best {best.seconds:8.2f} s  "
            f"{args.items / best.seconds:8.0f} items/s"
        )
    print(f"ratio on/off: {ratio:.3f} (at most {MAX_RATIO}): {time_verdict}")
    print(f"  best CPU seconds on/off: {cpu_ratio:.3f} (not judged)")
    print(
        f"event-log rows of the best runs: on {best_on.rows} ({best_on.progress_rows} progress, "
        f"{best_on.tag_writes} tag writes), off {best_off.rows} ({best_off.progress_rows} "
        f"progress, {best_off.tag_writes} tag writes), difference {best_on.rows - best_off.rows}"
    )
    print(
        f"progress rows with reporting on: at most {2 * len(STAGES)} + run seconds + "
        f"{SLACK_ROWS} each; tightest {tightest.progress_rows} of {tightest.bound:.0f} "
        f"({tightest.run_seconds:.1f} s run): {rows_verdict}"
    )
    return 0 if time_verdict == rows_verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
