"""A real Postgres instance and a real webserver see the tasks the CLI runs."""

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from plexus_dagster.instance import INSTANCE_TEMPLATE, project_instance
from plexus_dagster.settings import PROJECT_ROOT
from tests.integration import BIN, command_env, free_port, json_output, run
from tests.integration import postgres_home as make_postgres_home

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with make_postgres_home(tmp_path_factory.mktemp("postgres") / "home") as home:
        yield home


@pytest.fixture(scope="module")
def evaluated_on_postgres(
    postgres_home: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    env = command_env(postgres_home, tmp_path_factory.mktemp("storage"), data_dir)
    command = ["plexus", "evaluate", "--scorecard", "twacs", "--wait", "--json"]
    summary = json_output(run(command, env))
    return {"env": env, "summary": summary}


def test_the_embedded_default_is_sqlite_in_a_home_made_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))

    with project_instance() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert instance.root_directory == str(tmp_path / "home")
    assert (tmp_path / "home" / "dagster.yaml").read_text() == INSTANCE_TEMPLATE.read_text()


def test_a_task_run_on_postgres_is_read_back_by_another_process(
    evaluated_on_postgres: dict[str, Any], postgres_home: Path
) -> None:
    summary = evaluated_on_postgres["summary"]

    with dg.DagsterInstance.from_config(str(postgres_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        record = instance.get_run_by_id(summary["task_id"])
        assert record is not None
        assert record.status == dg.DagsterRunStatus.SUCCESS
        event = instance.get_latest_materialization_event(dg.AssetKey("evaluation_results"))
        assert event is not None
        assert event.asset_materialization is not None
        metadata = event.asset_materialization.metadata
        assert metadata["baggage/f1"].value == pytest.approx(summary["scores"]["baggage"]["f1"])


def _graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.fixture
def webserver(evaluated_on_postgres: dict[str, Any]) -> Iterator[int]:
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env=evaluated_on_postgres["env"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("dagster-webserver did not start within 90 s") from None
                time.sleep(0.5)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_webserver_shows_the_task_and_its_metrics(
    webserver: int, evaluated_on_postgres: dict[str, Any]
) -> None:
    summary = evaluated_on_postgres["summary"]

    runs = _graphql(
        webserver,
        "{ runsOrError { ... on Runs { results { runId status jobName } } } }",
    )["runsOrError"]["results"]
    asset = _graphql(
        webserver,
        """{ assetOrError(assetKey: {path: ["evaluation_results"]}) { ... on Asset {
             assetMaterializations(limit: 1) { partition runId
               metadataEntries { label ... on FloatMetadataEntry { floatValue } } } } } }""",
    )["assetOrError"]
    jobs = _graphql(
        webserver,
        """{ repositoriesOrError { ... on RepositoryConnection { nodes {
             jobs { name } } } } }""",
    )["repositoriesOrError"]["nodes"]

    assert {"runId": summary["task_id"], "status": "SUCCESS", "jobName": "evaluation_job"} in runs
    latest = asset["assetMaterializations"][0]
    assert latest["partition"] == "twacs"
    assert latest["runId"] == summary["task_id"]
    figures = {e["label"]: e.get("floatValue") for e in latest["metadataEntries"]}
    assert figures["delay/accuracy"] == pytest.approx(summary["scores"]["delay"]["accuracy"])
    job_names = {job["name"] for node in jobs for job in node["jobs"]}
    assert {"items_job", "train_job", "evaluation_job"} <= job_names
