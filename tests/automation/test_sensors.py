"""The automation sensors and schedule, evaluated against a real instance on real data."""

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from plexus_dagster import keys
from plexus_dagster.automation.failures import TASK_FAILURES
from plexus_dagster.automation.watching import read_cursor
from plexus_dagster.definitions import build_definitions
from plexus_dagster.settings import PROJECT_ROOT, PlexusSettings
from plexus_dagster.tasks.runs import TaskFailed, TaskRunner
from tests.conftest import make_settings

WATCHED_SOURCES = """
sources:
  - name: incoming
    format: csv
    path: incoming/banking.csv
    columns: {text: text, labels: [category]}
  - name: remote_only
    format: csv
    url: https://example.invalid/remote.csv
    columns: {text: text}
"""


@pytest.fixture
def watched(tmp_path: Path, data_dir: Path) -> PlexusSettings:
    """A data folder with nothing in it yet, and a source whose file will land there."""
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "incoming.yaml").write_text(WATCHED_SOURCES)
    (tmp_path / "data").mkdir()
    return make_settings(tmp_path / "data", tmp_path / "storage", sources_dir=sources)


@pytest.fixture
def home_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """An instance on disk that a second process, or a second look, can open again."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def _tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None
) -> dg.SensorResult:
    repository = defs.get_repository_def()
    sensor = repository.get_sensor_def("source_files_sensor")
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=defs.resources
    ) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_a_landed_file_starts_one_load_per_change(
    watched: PlexusSettings, home_instance: dg.DagsterInstance, data_dir: Path
) -> None:
    defs = build_definitions(watched)
    assert watched.data_dir is not None
    landed = watched.data_dir / "incoming" / "banking.csv"

    empty = _tick(defs, home_instance, None)
    landed.parent.mkdir()
    shutil.copyfile(data_dir / "banking77" / "test.csv", landed)
    first = _tick(defs, home_instance, empty.cursor)
    again = _tick(defs, home_instance, first.cursor)
    os.utime(landed, ns=(landed.stat().st_atime_ns, landed.stat().st_mtime_ns + 10**9))
    touched_mtime = landed.stat().st_mtime_ns
    touched = _tick(defs, home_instance, again.cursor)
    with dg.DagsterInstance.from_config(home_instance.root_directory) as reopened:
        restarted = _tick(defs, reopened, touched.cursor)
    with landed.open("a") as file:
        file.write("Please close my account today.,terminate_account\n")
    appended = _tick(defs, home_instance, restarted.cursor)

    assert empty.run_requests == []
    assert len(first.run_requests or []) == 1
    request = (first.run_requests or [])[0]
    assert request.job_name == "items_job"
    assert request.asset_selection == [
        dg.AssetKey(["sources", "incoming"]),
        dg.AssetKey(["items", "incoming"]),
    ]
    assert request.tags[keys.SOURCE_TAG] == "incoming"
    assert again.run_requests == []
    assert touched.run_requests == []
    assert restarted.run_requests == []
    assert len(appended.run_requests or []) == 1
    assert (appended.run_requests or [])[0].run_key != request.run_key
    assert set(read_cursor(appended.cursor)) == {"incoming"}
    # The touch is remembered, so the next look does not read the file again.
    assert read_cursor(touched.cursor)["incoming"].mtime_ns == touched_mtime


def test_a_file_whose_items_are_loaded_starts_nothing_on_first_sight(
    watched: PlexusSettings, home_instance: dg.DagsterInstance, data_dir: Path
) -> None:
    assert watched.data_dir is not None
    landed = watched.data_dir / "incoming" / "banking.csv"
    landed.parent.mkdir()
    shutil.copyfile(data_dir / "banking77" / "test.csv", landed)
    defs = build_definitions(watched)
    TaskRunner(defs, home_instance).ensure_items(["incoming"])

    loaded = _tick(defs, home_instance, None)
    landed.write_text(landed.read_text().replace("card_arrival", "card_delivery_estimate", 1))
    changed = _tick(defs, home_instance, loaded.cursor)

    assert loaded.run_requests == []
    assert read_cursor(loaded.cursor)["incoming"].path == str(landed)
    assert len(changed.run_requests or []) == 1


def test_a_failed_task_is_recorded_once_with_its_stage_and_error(
    settings: PlexusSettings, home_instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(settings)
    runner = TaskRunner(defs, home_instance)
    runner.register(runner.plexus.scorecards())
    # No items were loaded into this storage: the evaluation fails in its stage "Load items".
    with pytest.raises(TaskFailed) as failed:
        runner.run("evaluation_job", partition="twacs")
    run = home_instance.get_run_by_id(failed.value.run_id)
    assert run is not None
    records = home_instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    event = records[0].event_log_entry.dagster_event
    assert event is not None
    sensor = defs.get_repository_def().get_sensor_def("task_failure_sensor")

    for _ in range(2):
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_event=event,
            dagster_instance=home_instance,
            dagster_run=run,
        ).for_run_failure()
        sensor(context)

    path = settings.storage_dir / "task_failures.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["run_id"] == run.run_id
    assert lines[0]["job"] == "evaluation_job"
    assert lines[0]["partition"] == "twacs"
    assert lines[0]["stage"] == "Load items"
    assert "Items of source 'twacs' have not been materialized" in lines[0]["error"]
    events = home_instance.fetch_materializations(TASK_FAILURES, limit=10).records
    assert len(events) == 1
    materialization = events[0].asset_materialization
    assert materialization is not None
    metadata = materialization.metadata
    assert metadata["run"].value == run.run_id
    assert metadata["stage"].value == "Load items"
    assert metadata["partition"].value == "twacs"
    assert "have not been materialized" in str(metadata["error"].value)
    assert metadata["records"].value == str(path)


def test_the_schedule_evaluates_every_valid_scorecard_once_per_time(
    settings: PlexusSettings, home_instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(settings)
    repository = defs.get_repository_def()
    schedule = repository.get_schedule_def("evaluation_schedule")
    night = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)

    with dg.build_schedule_context(
        instance=home_instance,
        scheduled_execution_time=night,
        resources=defs.resources,
        repository_def=repository,
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests or []

    assert schedule.cron_schedule == "0 2 * * *"
    assert sorted(r.partition_key or "" for r in requests) == [
        "banking77",
        "banking77_gpu",
        "twacs",
    ]
    assert {r.run_key for r in requests} == {
        f"{key}:{night.isoformat()}" for key in ("banking77", "banking77_gpu", "twacs")
    }
    assert {r.job_name for r in requests} <= {None, "evaluation_job"}
    assert set(home_instance.get_dynamic_partitions("scorecards")) == {
        "banking77",
        "banking77_gpu",
        "twacs",
    }


def test_the_evaluation_cron_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PLEXUS_EVALUATION_CRON", "30 */6 * * *")
    monkeypatch.setenv("PLEXUS_EVALUATION_TIMEZONE", "Europe/Berlin")
    settings = PlexusSettings(storage_dir=tmp_path)

    schedule = (
        build_definitions(settings).get_repository_def().get_schedule_def("evaluation_schedule")
    )

    assert schedule.cron_schedule == "30 */6 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"


DELAY_SCORECARD = """
name: Delays only
key: twacs_delays
source: twacs
sections:
  - name: Topic
    scores:
      - name: Delay
        key: delay
        question: Is the conversation about a delayed flight?
        class: keyword
        parameters:
          rules:
            - class: yes
              patterns: ['\\bdelay(s|ed|ing)?\\b', '\\blate\\b']
          default: no
        classes: [yes, no]
        label: {field: tag, map: {DELAY: yes}, default: no}
"""


def _scoring_tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None
) -> tuple[dg.SensorResult, str | None]:
    sensor = defs.get_repository_def().get_sensor_def("items_scoring_sensor")
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=defs.resources
    ) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result, result.cursor


def test_new_items_are_scored_by_each_scorecard_of_their_source_without_a_restart(
    tmp_path: Path, data_dir: Path, home_instance: dg.DagsterInstance
) -> None:
    scorecards = tmp_path / "scorecards"
    scorecards.mkdir()
    shutil.copyfile(PROJECT_ROOT / "scorecards" / "twacs.yaml", scorecards / "twacs.yaml")
    settings = make_settings(data_dir, tmp_path / "storage", scorecards_dir=scorecards)
    # Built once, as a running code location is: the scorecard added below is read at run time.
    defs = build_definitions(settings)
    partitions = defs.get_repository_def().get_sensor_def("scorecard_partitions_sensor")
    runner = TaskRunner(defs, home_instance)

    _, cursor = _scoring_tick(defs, home_instance, None)
    runner.ensure_items(["twacs"])
    (scorecards / "twacs_delays.yaml").write_text(DELAY_SCORECARD)
    with dg.build_sensor_context(instance=home_instance, resources=defs.resources) as context:
        registered = partitions(context)
    assert isinstance(registered, dg.SensorResult)
    for request in registered.dynamic_partitions_requests or []:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        home_instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    scored, cursor = _scoring_tick(defs, home_instance, cursor)
    again, _ = _scoring_tick(defs, home_instance, cursor)
    for request in scored.run_requests or []:
        result = defs.resolve_job_def("prediction_job").execute_in_process(
            run_config=request.run_config,
            instance=home_instance,
            partition_key=request.partition_key,
        )
        assert result.success
    evaluated = defs.resolve_job_def("evaluation_job").execute_in_process(
        instance=home_instance, partition_key="twacs_delays"
    )

    requests = scored.run_requests or []
    assert sorted(r.partition_key or "" for r in requests) == ["twacs", "twacs_delays"]
    assert {r.job_name for r in requests} == {"prediction_job"}
    assert all(
        r.run_config == {"ops": {"predictions": {"config": {"source": "twacs"}}}} for r in requests
    )
    assert again.run_requests == []
    stored = pd.read_parquet(settings.predictions_dir / "twacs_delays" / "twacs.parquet")
    assert len(stored) == 491
    assert set(stored["value"]) == {"yes", "no"}
    assert len(pd.read_parquet(settings.predictions_dir / "twacs" / "twacs.parquet")) == 491 * 2
    assert evaluated.success
