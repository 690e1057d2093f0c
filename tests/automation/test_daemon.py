"""A real `dagster-daemon` turns a file landing in a watched folder into stored scores."""

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from plexus_dagster import keys
from plexus_dagster.settings import PROJECT_ROOT
from tests.integration import command_env, free_port, running, wait_for

pytestmark = pytest.mark.integration

SOURCES = """
sources:
  - name: incoming
    format: csv
    path: incoming/conversations.csv
    columns: {id: first_tweet_id, labels: [tag]}
    conversation:
      columns: [first_utterance, context]
      speakers: {cust: customer, rep: agent}
  - name: broken
    format: csv
    path: incoming/broken.csv
    columns: {text: text}
"""


def _runs(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(job_name=job)))


@pytest.fixture(scope="module")
def automated(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[dict[str, Any]]:
    """A daemon watching an empty folder; a scorecard, then two files, land while it runs."""
    root = tmp_path_factory.mktemp("automated")
    home, data, sources, scorecards = (root / n for n in ("home", "data", "sources", "scorecards"))
    for folder in (home, data / "incoming", sources, scorecards):
        folder.mkdir(parents=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    (sources / "incoming.yaml").write_text(SOURCES)
    env = {
        **command_env(home, root / "storage", data),
        "PLEXUS_SOURCES_DIR": str(sources),
        "PLEXUS_SCORECARDS_DIR": str(scorecards),
        "PLEXUS_SENSOR_INTERVAL": "5",
    }
    daemon = ["dagster-daemon", "run", "-m", "plexus_dagster.definitions"]
    log = root / "daemon.log"

    with dg.DagsterInstance.from_config(str(home)) as instance:
        with running(daemon, env, cwd=home, log=log):
            wait_for(
                lambda: _ticked(instance),
                timeout=120,
                what=f"the daemon's first sensor tick (log: {log})",
            )
            # Added while the code location runs: read at run time, registered by a sensor.
            scorecard = (PROJECT_ROOT / "scorecards" / "twacs.yaml").read_text()
            scorecard = scorecard.replace("key: twacs", "key: incoming_topics")
            (scorecards / "incoming.yaml").write_text(
                scorecard.replace("source: twacs", "source: incoming")
            )
            shutil.copyfile(
                data_dir / "twacs" / "twacs_labeled_raw.csv",
                data / "incoming" / "conversations.csv",
            )
            (data / "incoming" / "broken.csv").write_text("message\nhello\n")
            predictions = root / "storage" / "predictions" / "incoming_topics" / "incoming.parquet"
            failures = root / "storage" / "task_failures.jsonl"
            wait_for(predictions.exists, timeout=300, what=f"{predictions} (daemon log: {log})")
            wait_for(failures.exists, timeout=120, what=f"{failures} (daemon log: {log})")

        before_restart = {job: len(_runs(instance, job)) for job in ("items_job", "prediction_job")}
        # A restarted daemon goes on from the cursors it stored: no second run for the same files.
        with running(daemon, env, cwd=home, log=log):
            started = _ticks(instance)
            wait_for(
                lambda: _ticks(instance) >= started + 4,
                timeout=120,
                what="four more sensor ticks after the restart",
            )
        yield {
            "env": env,
            "home": home,
            "instance": instance,
            "predictions": predictions,
            "failures": failures,
            "before_restart": before_restart,
        }


def _ticks(instance: dg.DagsterInstance) -> int:
    states = [s for s in instance.all_instigator_state() if s.name == "source_files_sensor"]
    if not states:
        return 0
    return len(instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id))


def _all_finished(instance: dg.DagsterInstance, job: str) -> bool:
    runs = _runs(instance, job)
    return bool(runs) and all(run.is_finished for run in runs)


def _ticked(instance: dg.DagsterInstance) -> bool:
    return _ticks(instance) > 0


def test_a_landed_file_is_loaded_once_and_scored(automated: dict[str, Any]) -> None:
    instance: dg.DagsterInstance = automated["instance"]

    loads = [r for r in _runs(instance, "items_job") if r.tags.get(keys.SOURCE_TAG) == "incoming"]
    scorings = _runs(instance, "prediction_job")
    stored = pd.read_parquet(automated["predictions"])

    assert len(loads) == 1
    assert loads[0].status == dg.DagsterRunStatus.SUCCESS
    assert loads[0].tags["dagster/sensor_name"] == "source_files_sensor"
    assert len(scorings) == 1
    assert scorings[0].status == dg.DagsterRunStatus.SUCCESS
    assert scorings[0].tags["dagster/partition"] == "incoming_topics"
    assert len(stored) == 491 * 2
    assert stored["item_id"].nunique() == 491
    assert set(stored["score_key"]) == {"delay", "baggage"}
    assert {job: len(_runs(instance, job)) for job in ("items_job", "prediction_job")} == (
        automated["before_restart"]
    )
    state = next(s for s in instance.all_instigator_state() if s.name == "source_files_sensor")
    cursor = json.loads(state.instigator_data.cursor)  # type: ignore[union-attr]
    assert set(cursor) == {"incoming", "broken"}


def _graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def test_the_failed_load_is_recorded_where_the_ui_shows_it(
    automated: dict[str, Any], tmp_path: Path
) -> None:
    instance: dg.DagsterInstance = automated["instance"]
    failed = [r for r in _runs(instance, "items_job") if r.tags.get(keys.SOURCE_TAG) == "broken"]
    assert len(failed) == 1
    assert failed[0].status == dg.DagsterRunStatus.FAILURE
    lines = [json.loads(line) for line in automated["failures"].read_text().splitlines()]
    assert [line["run_id"] for line in lines] == [failed[0].run_id]
    assert lines[0]["stage"] == "Read"

    port = free_port()
    server = ["dagster-webserver", "-h", "127.0.0.1", "-p", str(port)]
    server += ["-m", "plexus_dagster.definitions"]
    with running(server, automated["env"], cwd=automated["home"], log=tmp_path / "web.log"):
        wait_for(lambda: _answers(port), timeout=120, what="dagster-webserver to answer")
        asset = _graphql(
            port,
            """{ assetOrError(assetKey: {path: ["task_failures"]}) { ... on Asset {
                 assetMaterializations(limit: 5) { description metadataEntries { label
                   ... on TextMetadataEntry { text }
                   ... on MarkdownMetadataEntry { mdStr }
                   ... on PipelineRunMetadataEntry { runId } } } } } }""",
        )["assetOrError"]

    events = asset["assetMaterializations"]
    assert len(events) == 1
    entries = {e["label"]: e for e in events[0]["metadataEntries"]}
    assert entries["run"]["runId"] == failed[0].run_id
    assert entries["job"]["text"] == "items_job"
    assert entries["stage"]["text"] == "Read"
    assert "has no column 'text'" in entries["error"]["mdStr"]
    assert events[0]["description"].startswith("items_job failed in Read")


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
            return True
    except OSError:
        return False
