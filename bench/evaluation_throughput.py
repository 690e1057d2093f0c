"""Throughput of the evaluation job against a bare loop over the same classifiers.

Scores N items (the Banking77 test texts repeated, each with its own id) with the banking77
scorecard twice in one process: once through the evaluation job (one Dagster run: reading the
items, scoring, labels, metrics and writing the Parquet results), and once as a bare loop that
reads the same items, loads the same classifiers and calls ``predict`` of every score on every
item. The bare loop ignores ``depends_on``, so it does at least as much classifier work as the
job. Training and loading the items are done first and are not timed.

Both are timed ``--repeats`` times, alternating, and the best time of each is compared, so that
other work on the machine and the first calls' warm-up weigh as little as possible.

The requirement: the job may cost at most 1.5x the bare loop. The script prints its figures and
exits 1 when the requirement fails, 0 when it holds.

    .venv/bin/python bench/evaluation_throughput.py [--items N] [--repeats R]
"""

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from plexus_dagster.definitions import build_definitions
from plexus_dagster.evaluations.scoring import load_scores
from plexus_dagster.resources import PlexusResource
from plexus_dagster.settings import PROJECT_ROOT, PlexusSettings
from plexus_dagster.sources.loading import locate_source, read_source
from plexus_dagster.sources.models import load_sources
from plexus_dagster.tasks.runs import TaskRunner

SCORECARD = "banking77"
TEST_SOURCE = "banking77_test"
BENCH_SOURCE = "banking77_bench"
MAX_RATIO = 1.5

BENCH_SOURCE_YAML = """\
sources:
  - name: {name}
    description: Banking77 test texts repeated to {items} items.
    format: parquet
    path: {path}
    columns:
      text: text
      labels: [category]
"""


def write_bench_items(settings: PlexusSettings, items: int, target: Path) -> None:
    """Writes the Banking77 test split repeated to ``items`` rows as Parquet at ``target``."""
    test = load_sources(PROJECT_ROOT / "sources")[TEST_SOURCE]
    frame = read_source(test, locate_source(test, settings))[["text", "category"]]
    repeats = -(-items // len(frame))
    repeated = pd.concat([frame] * repeats, ignore_index=True).head(items)
    repeated.to_parquet(target, index=False)


def prepare(root: Path, items: int) -> PlexusSettings:
    """Folders under ``root`` with the bench source and the banking77 scorecard reading it."""
    sources_dir = root / "sources"
    scorecards_dir = root / "scorecards"
    sources_dir.mkdir()
    scorecards_dir.mkdir()
    settings = PlexusSettings(
        sources_dir=sources_dir,
        scorecards_dir=scorecards_dir,
        storage_dir=root / "storage",
    )

    (sources_dir / "banking77.yaml").write_text(
        (PROJECT_ROOT / "sources" / "banking77.yaml").read_text()
    )
    data = root / f"{BENCH_SOURCE}.parquet"
    write_bench_items(settings, items, data)
    (sources_dir / f"{BENCH_SOURCE}.yaml").write_text(
        BENCH_SOURCE_YAML.format(name=BENCH_SOURCE, items=items, path=data)
    )

    scorecard, replaced = re.subn(
        rf"^source: {TEST_SOURCE}$",
        f"source: {BENCH_SOURCE}",
        (PROJECT_ROOT / "scorecards" / f"{SCORECARD}.yaml").read_text(),
        count=1,
        flags=re.MULTILINE,
    )
    if replaced != 1:
        raise SystemExit(f"scorecards/{SCORECARD}.yaml has no line 'source: {TEST_SOURCE}'")
    (scorecards_dir / f"{SCORECARD}.yaml").write_text(scorecard)
    return settings


def time_job(runner: TaskRunner) -> tuple[float, float, int]:
    """Seconds of ``TaskRunner.evaluate``, seconds the asset reports for itself, items scored."""
    scorecard = runner.plexus.scorecards()[SCORECARD]
    started = time.perf_counter()
    _, summary = runner.evaluate(scorecard)
    assert summary is not None  # evaluate waits for the run by default
    return time.perf_counter() - started, float(summary["seconds"]), int(summary["items"])


def time_bare_loop(plexus: PlexusResource) -> tuple[float, int]:
    """Seconds to read the items, load the classifiers and predict every score on every item."""
    config = plexus.scorecards()[SCORECARD].config
    started = time.perf_counter()
    texts = pd.read_parquet(plexus.items_path(config.source), columns=["text"])["text"].tolist()
    for score in load_scores(config, plexus.model_store()):
        predictions = score.classifier.predict(texts)
        assert len(predictions) == len(texts)
    return time.perf_counter() - started, len(texts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="items to score")
    parser.add_argument("--repeats", type=int, default=3, help="timings of each, best kept")
    args = parser.parse_args()
    if args.items < 1 or args.repeats < 1:
        parser.error("--items and --repeats must be at least 1")

    with tempfile.TemporaryDirectory(prefix="plexus-bench-") as folder:
        settings = prepare(Path(folder), args.items)
        defs = build_definitions(settings)
        with dg.DagsterInstance.ephemeral() as instance:
            runner = TaskRunner(defs, instance, announce=lambda message: None)
            plexus = runner.plexus
            scorecards = plexus.scorecards()
            runner.register(scorecards)
            runner.ensure_items([BENCH_SOURCE])
            runner.train(scorecards[SCORECARD])

            jobs: list[tuple[float, float, int]] = []
            bares: list[tuple[float, int]] = []
            for _ in range(args.repeats):
                jobs.append(time_job(runner))
                bares.append(time_bare_loop(plexus))

    counts = {items for *_, items in jobs} | {items for _, items in bares}
    if counts != {args.items}:
        raise SystemExit(f"scored {sorted(counts)} items instead of {args.items}")
    job_seconds, asset_seconds, _ = min(jobs)
    bare_seconds, _ = min(bares)
    scores = len(scorecards[SCORECARD].config.scores)
    ratio = job_seconds / bare_seconds
    verdict = "PASS" if ratio <= MAX_RATIO else "FAIL"
    print(f"scorecard {SCORECARD}: {scores} scores, {args.items} items, best of {args.repeats}")
    print(f"  job times:  {', '.join(f'{seconds:.2f}' for seconds, *_ in jobs)} s")
    print(f"  bare times: {', '.join(f'{seconds:.2f}' for seconds, _ in bares)} s")
    print(f"evaluation job: {job_seconds:8.2f} s  {args.items / job_seconds:10.0f} items/s")
    print(f"  of which the evaluation_results asset reports {asset_seconds:.2f} s")
    print(f"bare loop:      {bare_seconds:8.2f} s  {args.items / bare_seconds:10.0f} items/s")
    print("  (the bare loop predicts every score for every item, ignoring depends_on)")
    print(f"ratio job/bare: {ratio:.2f} (at most {MAX_RATIO}): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
