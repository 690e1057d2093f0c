"""Tasks launched from the command line and read back by other processes, on SQLite and Postgres."""

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from tests.integration import command_env, json_output, postgres_home, run, run_in_terminal

pytestmark = pytest.mark.integration

SUBMITTED = re.compile(r"Task ([0-9a-f-]{36}) submitted")


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path, data_dir: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield command_env(tmp_path / "home", tmp_path / "storage", data_dir)
        return
    with postgres_home(tmp_path / "home") as home:
        yield command_env(home, tmp_path / "storage", data_dir)


def submit(args: list[str], env: dict[str, str]) -> str:
    completed = run(args, env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    found = SUBMITTED.search(completed.stdout)
    assert found, completed.stdout
    return found.group(1)


def show(task_id: str, env: dict[str, str]) -> dict[str, Any]:
    return json_output(run(["plexus", "tasks", "show", task_id, "--json"], env))


def test_a_submitted_evaluation_is_watched_and_read_back_by_other_processes(
    env: dict[str, str],
) -> None:
    task_id = submit(["plexus", "evaluate", "--scorecard", "twacs"], env)

    code, screen = run_in_terminal(["plexus", "tasks", "watch", task_id[:8]], env)

    assert code == 0, screen
    for stage in ("Setup", "Load items", "Score", "Analyze", "Store"):
        assert stage in screen
    assert "491/491" in screen
    assert f"Task {task_id} ended SUCCESS." in screen
    assert "\x1b[" in screen  # drawn as live bars, not plain lines

    document = show(task_id, env)
    assert document["id"] == task_id
    assert document["status"] == "SUCCESS"
    assert document["partition"] == "twacs"
    assert [s["status"] for s in document["stages"]] == ["done"] * 5
    assert document["resources"]["rss_bytes"] > 0
    assert document["error"] is None
    summary = document["results"]["evaluation_results"]
    assert Path(summary["results_path"]).is_file()
    metrics = document["results"]["materializations"]["evaluation_results"]["metrics"]
    assert {row["score"] for row in metrics} >= {"delay", "baggage"}

    shown = run(["plexus", "tasks", "show", task_id], env).stdout
    assert "materialized evaluation_results:" in shown
    assert "metrics: table of" in shown
    assert "TableRecord" not in shown

    listed = json_output(run(["plexus", "tasks", "list", "--json", "--status", "SUCCESS"], env))
    by_id = {row["id"]: row for row in listed}
    assert by_id[task_id]["job"] == "evaluation_job"
    assert by_id[task_id]["stage"] == "done"
    assert any(row["job"] == "items_job" for row in listed)

    logs = run(["plexus", "tasks", "logs", task_id], env)
    assert "Evaluated 491 items of scorecard 'twacs'" in logs.stdout
    assert "RUN_SUCCESS" in logs.stdout or "Finished execution of run" in logs.stdout


SLOW_SCORECARD = """\
name: Slow
key: slow
source: slow_items
sections:
  - name: Main
    scores:
      - name: Backtracking
        key: backtracking
        question: Does a pattern with catastrophic backtracking match?
        class: keyword
        parameters:
          rules:
            - class: yes
              patterns: ['(a|aa)+c']
          default: no
        classes: [yes, no]
"""


@pytest.fixture
def slow_env(tmp_path: Path, data_dir: Path) -> dict[str, str]:
    """A scorecard that takes about a second per item, to cancel in the middle of scoring."""
    sources, cards = tmp_path / "sources", tmp_path / "scorecards"
    sources.mkdir()
    cards.mkdir()
    rows = tmp_path / "slow.csv"
    rows.write_text("text\n" + "\n".join("a" * 27 for _ in range(200)) + "\n")
    (sources / "slow.yaml").write_text(
        "sources:\n  - name: slow_items\n    format: csv\n"
        f"    path: {rows}\n    columns: {{text: text}}\n"
    )
    (cards / "slow.yaml").write_text(SLOW_SCORECARD)
    env = command_env(tmp_path / "home", tmp_path / "storage", data_dir)
    return {**env, "PLEXUS_SOURCES_DIR": str(sources), "PLEXUS_SCORECARDS_DIR": str(cards)}


def test_cancel_ends_a_running_task_canceled_within_five_seconds(
    slow_env: dict[str, str],
) -> None:
    task_id = submit(["plexus", "evaluate", "--scorecard", "slow"], slow_env)
    deadline = time.monotonic() + 120
    while show(task_id, slow_env)["stages"][2:3] != [] and time.monotonic() < deadline:
        if show(task_id, slow_env)["stages"][2]["status"] == "running":
            break
        time.sleep(0.5)
    assert show(task_id, slow_env)["stages"][2]["status"] == "running"

    cancelled = run(["plexus", "tasks", "cancel", task_id], slow_env)

    assert cancelled.returncode == 0, cancelled.stderr
    assert f"Task {task_id} ended CANCELED." in cancelled.stdout
    with dg.DagsterInstance.from_config(slow_env["DAGSTER_HOME"]) as instance:
        asked = instance.get_records_for_run(
            task_id, of_type=dg.DagsterEventType.RUN_CANCELING
        ).records[0]
        record = instance.get_run_record_by_id(task_id)
        assert record is not None
        assert record.end_time is not None
        # From the cancel request to CANCELED, as the run's own events time it.
        assert record.end_time - asked.timestamp < 5
    document = show(task_id, slow_env)
    assert document["status"] == "CANCELED"
    watched = run(["plexus", "tasks", "watch", task_id], slow_env)
    assert watched.returncode == 1


def wait_for_scoring(task_id: str, env: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        document = show(task_id, env)
        stages = document["stages"]
        if len(stages) > 2 and stages[2]["status"] == "running":
            return document
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} did not reach its Score stage")


def test_a_cancel_request_from_the_ui_stops_a_task_the_cli_started(
    slow_env: dict[str, str],
) -> None:
    task_id = submit(["plexus", "evaluate", "--scorecard", "slow"], slow_env)
    wait_for_scoring(task_id, slow_env)

    with dg.DagsterInstance.from_config(slow_env["DAGSTER_HOME"]) as instance:
        started = instance.get_run_by_id(task_id)
        assert started is not None
        # What the UI's Terminate does when no run launcher knows the run.
        instance.report_run_canceling(started, message="Terminate pressed in the UI.")
        deadline = time.monotonic() + 10
        while not instance.get_run_by_id(task_id).is_finished:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the task did not stop"
            time.sleep(0.2)
        assert instance.get_run_by_id(task_id).status == dg.DagsterRunStatus.CANCELED  # type: ignore[union-attr]
    document = show(task_id, slow_env)
    assert document["error"] is None
    assert document["stages"][2]["status"] == "canceled"


def test_a_worker_killed_outright_is_marked_failed_when_read(slow_env: dict[str, str]) -> None:
    task_id = submit(["plexus", "evaluate", "--scorecard", "slow"], slow_env)
    wait_for_scoring(task_id, slow_env)
    with dg.DagsterInstance.from_config(slow_env["DAGSTER_HOME"]) as instance:
        started = instance.get_run_by_id(task_id)
        assert started is not None
        os.kill(int(started.tags["plexus/pid"]), signal.SIGKILL)
    time.sleep(1)

    document = show(task_id, slow_env)

    assert document["status"] == "FAILURE"
    assert "ended without reporting" in document["error"]["message"]
    watched = run(["plexus", "tasks", "watch", task_id], slow_env)
    assert watched.returncode == 1


def test_watching_a_failed_task_exits_non_zero_and_names_the_stage(
    slow_env: dict[str, str], tmp_path: Path
) -> None:
    Path(slow_env["PLEXUS_SOURCES_DIR"], "slow.yaml").write_text(
        "sources:\n  - name: slow_items\n    format: csv\n"
        f"    path: {tmp_path / 'gone.csv'}\n    columns: {{text: text}}\n"
    )

    evaluated = run(["plexus", "evaluate", "--scorecard", "slow", "--wait"], slow_env)

    assert evaluated.returncode == 1
    assert "Source 'slow_items': file" in evaluated.stderr
    assert "does not exist" in evaluated.stderr
    failed = json_output(
        run(["plexus", "tasks", "list", "--json", "--status", "FAILURE"], slow_env)
    )
    assert len(failed) == 1
    document = show(failed[0]["id"], slow_env)
    assert document["error"]["stage"] == "Locate"
    assert "does not exist" in document["error"]["message"]
    assert json.dumps(document)  # the whole document is JSON
