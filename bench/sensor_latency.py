"""How long a file landing takes to become stored scores, with the daemon running.

A copy of the Banking77 test split is declared as source ``bench_banking`` in a temporary data
folder, with a copy of the banking77 scorecard on it. Before the daemon starts, its items are
loaded, the scorecard trained and every item scored, in this process. Then `dagster-daemon`
runs with the sensors at their interval (``PLEXUS_SENSOR_INTERVAL``, 30 s unless set), and
once it is idle 1,000 new items (rows of the train split) are appended to the file. The script
follows the runs this starts and prints, counted from the moment the file was written:

- when source_files_sensor started the items run (the file noticed);
- when the items run ended;
- when items_scoring_sensor started the scoring run;
- when the scoring run ended, with the 1,000 new items' scores stored.

The requirement: the file is noticed within the sensor's interval plus one tick of the
daemon's sensor loop (5 s). The script exits 1 when it is not, 0 when it is.

    .venv/bin/python bench/sensor_latency.py [--interval SECONDS]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pandas as pd
from tabulate import tabulate

from plexus_dagster import keys
from plexus_dagster.definitions import build_definitions
from plexus_dagster.settings import PROJECT_ROOT, PlexusSettings
from plexus_dagster.tasks.runs import TaskRunner

T = TypeVar("T")
NEW_ITEMS = 1000
DAEMON_LOOP_SECONDS = 5
TIMEOUT = 900
SOURCE = """
sources:
  - name: bench_banking
    format: csv
    path: bench/banking.csv
    columns: {text: text, labels: [category]}
"""


def _runs(instance: dg.DagsterInstance, job: str) -> list[dg.RunRecord]:
    records = instance.get_run_records(
        dg.RunsFilter(job_name=job, tags={keys.SOURCE_TAG: "bench_banking"})
    )
    return sorted(records, key=lambda record: record.create_timestamp.timestamp())


def _wait(condition: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + TIMEOUT
    while not (value := condition()):
        if time.monotonic() > deadline:
            sys.exit(f"Gave up after {TIMEOUT} s waiting for {what}.")
        time.sleep(0.5)
    return value


def _finished(instance: dg.DagsterInstance, job: str, count: int) -> dg.RunRecord | None:
    records = _runs(instance, job)
    if len(records) < count or not records[count - 1].dagster_run.is_finished:
        return None
    return records[count - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--interval", type=int, default=30, help="the sensors' interval, seconds")
    args = parser.parse_args()
    data_dir = PlexusSettings().data_dir
    if data_dir is None:
        sys.exit("Set PLEXUS_DATA_DIR to the folder holding banking77/.")

    root = Path(tempfile.mkdtemp(prefix="plexus-sensor-latency-"))
    home, data, sources, scorecards = (root / n for n in ("home", "data", "sources", "scorecards"))
    for folder in (home, data / "bench", sources, scorecards):
        folder.mkdir(parents=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    shutil.copyfile(PROJECT_ROOT / "sources" / "banking77.yaml", sources / "banking77.yaml")
    (sources / "bench.yaml").write_text(SOURCE)
    card = (PROJECT_ROOT / "scorecards" / "banking77.yaml").read_text()
    card = card.replace("key: banking77", "key: bench_banking")
    (scorecards / "bench.yaml").write_text(
        card.replace("source: banking77_test", "source: bench_banking")
    )
    landed = data / "bench" / "banking.csv"
    shutil.copytree(data_dir / "banking77", data / "banking77")
    shutil.copyfile(data_dir / "banking77" / "test.csv", landed)
    settings = PlexusSettings(
        data_dir=data, sources_dir=sources, scorecards_dir=scorecards, storage_dir=root / "storage"
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLEXUS_DATA_DIR": str(data),
        "PLEXUS_SOURCES_DIR": str(sources),
        "PLEXUS_SCORECARDS_DIR": str(scorecards),
        "PLEXUS_STORAGE_DIR": str(settings.storage_dir),
        "PLEXUS_SENSOR_INTERVAL": str(args.interval),
    }

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runner = TaskRunner(build_definitions(settings), instance)
        scorecard = runner.plexus.scorecards()["bench_banking"]
        runner.register({"bench_banking": scorecard})
        print("Loading, training and scoring the copy before the daemon starts.", flush=True)
        runner.predict(scorecard)
        predictions = settings.predictions_dir / "bench_banking" / "bench_banking.parquet"
        before = pd.read_parquet(predictions)["item_id"].nunique()

        log = (root / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster-daemon"),
                "run",
                "-m",
                "plexus_dagster.definitions",
            ],
            cwd=home,
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            # The scoring sensor's first tick catches up on the items loaded above.
            print("Waiting for the daemon's first ticks.", flush=True)
            _wait(lambda: _finished(instance, "prediction_job", 1), "the catch-up scoring run")
            time.sleep(args.interval)

            rows = pd.read_csv(data_dir / "banking77" / "train.csv", dtype=str).head(NEW_ITEMS)
            rows.to_csv(landed, mode="a", header=False, index=False)
            landed_at = time.time()
            print(f"Appended {NEW_ITEMS:,} items to {landed}.", flush=True)

            load = _wait(lambda: _finished(instance, "items_job", 1), "the items run")
            scoring = _wait(lambda: _finished(instance, "prediction_job", 2), "the scoring run")
            after = pd.read_parquet(predictions)["item_id"].nunique()
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
            log.close()

    def since(timestamp: float | None) -> float:
        return round((timestamp or float("nan")) - landed_at, 1)

    noticed = since(load.create_timestamp.timestamp())
    figures = [
        ["file noticed, items run started", noticed],
        ["items run ended", since(load.end_time)],
        ["scoring run started", since(scoring.create_timestamp.timestamp())],
        ["scoring run ended, scores stored", since(scoring.end_time)],
    ]
    print(tabulate(figures, headers=["seconds after the file landed", ""], tablefmt="github"))
    print(f"Items scored: {before:,} before, {after:,} after ({after - before:,} new).")
    limit = args.interval + DAEMON_LOOP_SECONDS
    print(f"Requirement: noticed within {limit} s (interval {args.interval} s + one 5 s tick).")
    ok = noticed <= limit and after - before == NEW_ITEMS
    print("PASS" if ok else "FAIL")
    shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
