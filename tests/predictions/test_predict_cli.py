"""`plexus predict`, run as a user runs it: a task over a source, or one text at once."""

from pathlib import Path

import pandas as pd
import pytest

from plexus_dagster.settings import PlexusSettings
from tests.integration import command_env, json_output, run

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path, data_dir: Path) -> dict[str, str]:
    return command_env(tmp_path / "home", tmp_path / "storage", data_dir)


def test_predict_scores_a_source_then_skips_what_it_scored(env: dict[str, str]) -> None:
    command = ["plexus", "predict", "--scorecard", "twacs", "--source", "twacs", "--wait"]
    first = json_output(run([*command, "--json"], env))
    again = run(command, env)

    assert first["source"] == "twacs"
    assert (first["new_items"], first["already_scored"], first["failed_items"]) == (491, 0, 0)
    stored = pd.read_parquet(first["results_path"])
    assert len(stored) == first["rows"] == 491 * 2
    assert again.returncode == 0, again.stderr[-3000:]
    assert "scored 0 of the 491 items of 'twacs'" in again.stdout
    assert "491 skipped as already scored; 0 failed" in again.stdout
    assert first["results_path"] in again.stdout.replace("\n", "")
    assert len(pd.read_parquet(first["results_path"])) == 491 * 2


def test_predict_text_answers_an_obvious_case(
    trained_settings: PlexusSettings, tmp_path: Path
) -> None:
    # Scoring a text reads the trained models and writes nothing, so it may share them.
    env = command_env(tmp_path / "home", trained_settings.storage_dir, trained_settings.data_dir)
    text = "I want to close my account"

    answer = json_output(
        run(["plexus", "predict", "-s", "banking77", "--text", text, "--json"], env)
    )

    scores = answer["scores"]
    assert list(scores) == [
        "close_account",
        "refund",
        "refund_missing",
        "cancel_transfer",
        "disputed_charge",
        "lost_or_compromised_card",
        "intent",
    ]
    assert scores["close_account"]["value"] == "yes"
    assert "close my account" in scores["close_account"]["explanation"]
    assert scores["intent"]["value"] == "terminate_account"
    assert scores["intent"]["confidence"] > 0.5
    assert scores["refund"]["value"] == "no"
    assert scores["refund_missing"]["value"] == "SKIPPED"
    assert answer["seconds"]["predict"] < 1.0
    assert not (tmp_path / "home").exists()


def test_predict_text_without_models_says_to_train(env: dict[str, str]) -> None:
    completed = run(["plexus", "predict", "-s", "banking77", "--text", "close my account"], env)

    assert completed.returncode == 1
    assert "has no model trained" in completed.stderr
    assert "plexus train --scorecard banking77" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_predict_refuses_an_unknown_source_before_any_run(env: dict[str, str]) -> None:
    completed = run(["plexus", "predict", "-s", "twacs", "--source", "nope"], env)

    assert completed.returncode == 2
    assert "unknown source 'nope'; declared sources: banking77_test" in completed.stderr
    assert not Path(env["DAGSTER_HOME"]).exists()
