"""The plexus and dagster commands, run as a user runs them, against a real instance on disk."""

import json
from pathlib import Path

import dagster as dg
import pytest

from tests.integration import command_env, json_output, run

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path, data_dir: Path) -> dict[str, str]:
    return command_env(tmp_path / "home", tmp_path / "storage", data_dir)


def test_evaluate_json_runs_a_task_the_instance_records(env: dict[str, str]) -> None:
    command = ["plexus", "evaluate", "--scorecard", "twacs", "--wait", "--json"]
    summary = json_output(run(command, env))

    assert summary["scorecard"] == "twacs"
    assert summary["items"] == 491
    assert Path(summary["results_path"]).is_file()
    delay = summary["scores"]["delay"]
    for name in ("accuracy", "precision", "recall", "f1", "ac1", "kappa"):
        assert 0 < delay[name] <= 1
    assert delay["confusion_matrix"]["labels"] == ["yes", "no"]
    assert sum(map(sum, delay["confusion_matrix"]["matrix"])) == delay["evaluated"] == 491
    assert delay["skipped"] == delay["errors"] == 0

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        run_record = instance.get_run_by_id(summary["task_id"])
        assert run_record is not None
        assert run_record.job_name == "evaluation_job"
        assert run_record.status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_dynamic_partitions("scorecards") == [
            "banking77",
            "banking77_gpu",
            "twacs",
        ]


def test_evaluate_prints_a_table_and_the_task_id(env: dict[str, str]) -> None:
    command = ["plexus", "evaluate", "-s", "twacs", "--sample", "100", "--seed", "1", "--wait"]
    completed = run(command, env)

    assert completed.returncode == 0, completed.stderr
    assert "Scorecard 'twacs' on 100 items" in completed.stdout
    assert "baggage" in completed.stdout
    assert "delay" in completed.stdout
    assert "Task " in completed.stdout


def test_unknown_scorecard_is_refused_before_any_run(env: dict[str, str]) -> None:
    completed = run(["plexus", "evaluate", "--scorecard", "nope"], env)

    assert completed.returncode == 2
    assert (
        "unknown scorecard 'nope'; known scorecards: banking77, banking77_gpu, twacs"
        in completed.stderr
    )
    assert "Traceback" not in completed.stderr
    assert not (Path(env["DAGSTER_HOME"]) / "storage").exists()


def test_train_then_evaluate_banking77_sample_records_the_model_versions(
    env: dict[str, str],
) -> None:
    trained = run(["plexus", "train", "--scorecard", "banking77", "--wait"], env)
    assert trained.returncode == 0, trained.stderr
    assert "trained 5 score(s)" in trained.stdout

    summary = json_output(
        run(["plexus", "evaluate", "-s", "banking77", "--sample", "300", "--wait", "--json"], env)
    )

    assert summary["items"] == 300
    assert set(summary["model_versions"]) == {
        "refund",
        "refund_missing",
        "disputed_charge",
        "lost_or_compromised_card",
        "intent",
    }
    for version in summary["model_versions"].values():
        assert version in trained.stdout


def test_dagster_commands_materialize_items_and_evaluate_a_partition(
    env: dict[str, str],
) -> None:
    module = ["-m", "plexus_dagster.definitions"]
    selection = "sources/twacs,items/twacs"
    # As the README says: a plexus command creates the instance and registers the partitions.
    registered = run(["plexus", "scorecards", "register"], env)
    loaded = run(["dagster", "asset", "materialize", *module, "--select", selection], env)
    evaluated = run(
        [
            "dagster",
            "job",
            "execute",
            *module,
            "-j",
            "evaluation_job",
            "--tags",
            json.dumps({"dagster/partition": "twacs"}),
        ],
        env,
    )

    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert registered.returncode == 0, registered.stderr
    assert "banking77, banking77_gpu, twacs" in registered.stdout
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("evaluation_results"))
        assert event is not None
        assert event.asset_materialization is not None
        assert event.asset_materialization.partition == "twacs"
