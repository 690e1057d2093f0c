"""The prediction job run in process on real data: stored once, and only what is new scored."""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from plexus_dagster.definitions import build_definitions
from plexus_dagster.predictions.storage import PREDICTION_COLUMNS
from plexus_dagster.settings import PROJECT_ROOT, PlexusSettings
from plexus_dagster.tasks.reading import TaskReader
from plexus_dagster.tasks.runs import TaskFailed, TaskResult, TaskRunner
from tests.conftest import make_settings


def _rows(result: TaskResult) -> pd.DataFrame:
    return pd.read_parquet(str(result.metadata["plexus/results_path"]))


def _counts(result: TaskResult) -> tuple[int, int, int, int]:
    metadata = result.metadata
    names = ("new_items", "rescored_items", "already_scored", "failed_items")
    return tuple(int(metadata[f"plexus/{name}"]) for name in names)  # type: ignore[return-value]


def _scored_at(rows: pd.DataFrame, score_key: str) -> set[pd.Timestamp]:
    return set(rows.loc[rows["score_key"] == score_key, "scored_at"])


def test_twacs_is_scored_once_and_a_rerun_scores_nothing_new(
    runner: TaskRunner, instance: dg.DagsterInstance
) -> None:
    twacs = runner.plexus.scorecards()["twacs"]

    first = runner.predict(twacs)
    stored = _rows(first)
    second = runner.predict(twacs)

    assert _counts(first) == (491, 0, 0, 0)
    assert list(stored.columns) == PREDICTION_COLUMNS
    assert len(stored) == 491 * 2
    assert not stored.duplicated(["item_id", "score_key"]).any()
    assert set(stored["value"]) == {"yes", "no"}
    versions = first.metadata["plexus/model_versions"]
    assert set(stored["model_version"]) == {versions["delay"], versions["baggage"]}
    assert first.metadata["plexus/results_path"].endswith("predictions/twacs/twacs.parquet")

    assert _counts(second) == (0, 0, 491, 0)
    pd.testing.assert_frame_equal(_rows(second), stored)

    run = instance.get_run_by_id(second.run_id)
    assert run is not None
    assert run.job_name == "prediction_job"
    assert run.tags["dagster/partition"] == "twacs"
    stages = TaskReader(instance, second.run_id).poll().to_dict()["stages"]
    assert [stage["name"] for stage in stages] == ["Setup", "Load items", "Score", "Store"]
    assert [stage["status"] for stage in stages] == ["done"] * 4
    event = instance.get_latest_materialization_event(dg.AssetKey("predictions"))
    assert event is not None
    assert event.asset_materialization is not None
    assert event.asset_materialization.partition == "twacs"


def test_a_growing_source_has_only_its_new_items_scored(
    data_dir: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    rows = pd.read_csv(data_dir / "twacs" / "twacs_labeled_raw.csv")
    copy = tmp_path / "twacs.csv"
    rows.iloc[:300].to_csv(copy, index=False)
    sources = tmp_path / "sources"
    sources.mkdir()
    declared = (PROJECT_ROOT / "sources" / "twacs.yaml").read_text()
    (sources / "twacs.yaml").write_text(
        declared.replace("path: twacs/twacs_labeled_raw.csv", f"path: {copy}")
    )
    settings = make_settings(data_dir, tmp_path / "storage", sources_dir=sources)
    runner = TaskRunner(build_definitions(settings), instance)
    catalog = runner.plexus.catalog()  # banking77 names sources this folder does not declare
    runner.register(catalog.scorecards)
    twacs = catalog.find("twacs")

    before = runner.predict(twacs)
    first = _rows(before)
    rows.iloc[300:].to_csv(copy, mode="a", index=False, header=False)
    after = runner.predict(twacs)

    old = int(before.metadata["plexus/items"])
    total = int(after.metadata["plexus/items"])
    assert 0 < old < total == 491
    assert _counts(before) == (old, 0, 0, 0)
    assert _counts(after) == (total - old, 0, old, 0)
    grown = _rows(after)
    assert len(grown) == total * 2
    assert not grown.duplicated(["item_id", "score_key"]).any()
    kept = grown.merge(first, on=["item_id", "score_key"], suffixes=("", "_before"))
    assert len(kept) == old * 2
    assert (kept["scored_at"] == kept["scored_at_before"]).all()
    added = grown[~grown["item_id"].isin(first["item_id"])]
    assert len(added) == (total - old) * 2
    assert added["scored_at"].min() > first["scored_at"].max()


def test_a_changed_score_is_scored_again_with_the_scores_that_depend_on_it(
    data_dir: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    cards = tmp_path / "scorecards"
    cards.mkdir()
    card = cards / "twacs.yaml"
    project = (PROJECT_ROOT / "scorecards" / "twacs.yaml").read_text()
    # Baggage is asked only of conversations that are not about a delay.
    assert project.endswith("          default: no\n")  # baggage, the last score
    dependent = project + "        depends_on: {delay: 'no'}\n"
    card.write_text(dependent)
    settings = make_settings(data_dir, tmp_path / "storage", scorecards_dir=cards)
    runner = TaskRunner(build_definitions(settings), instance)
    runner.register(runner.plexus.scorecards())
    twacs = runner.plexus.scorecards()["twacs"]

    first = _rows(runner.predict(twacs))
    card.write_text(dependent.replace("luggage|", "luggage|valise|"))
    baggage_changed = runner.predict(twacs)
    second = _rows(baggage_changed)
    card.write_text(dependent.replace(r"'\blate\b'", r"'\b(late|later)\b'"))
    delay_changed = runner.predict(twacs)
    third = _rows(delay_changed)

    assert "SKIPPED" in set(first["value"])
    assert _counts(baggage_changed) == (0, 491, 0, 0)
    assert _scored_at(second, "delay") == _scored_at(first, "delay")
    assert min(_scored_at(second, "baggage")) > max(_scored_at(first, "baggage"))
    assert _counts(delay_changed) == (0, 491, 0, 0)
    assert min(_scored_at(third, "delay")) > max(_scored_at(second, "delay"))
    assert min(_scored_at(third, "baggage")) > max(_scored_at(second, "baggage"))
    assert len(third) == 491 * 2
    versions = delay_changed.metadata["plexus/model_versions"]
    for score_key in ("delay", "baggage"):
        stored = set(third.loc[third["score_key"] == score_key, "model_version"])
        assert stored == {versions[score_key]}


@pytest.fixture
def trained_copy(trained_settings: PlexusSettings, tmp_path: Path) -> PlexusSettings:
    """Storage of its own holding the session's banking77 items and models, to train again."""
    storage = tmp_path / "storage"
    for folder in ("items", "models"):
        shutil.copytree(trained_settings.storage_dir / folder, storage / folder)
    return make_settings(trained_settings.data_dir, storage)


def test_a_new_model_version_rescores_its_score_and_its_dependents(
    trained_copy: PlexusSettings, instance: dg.DagsterInstance
) -> None:
    runner = TaskRunner(build_definitions(trained_copy), instance)
    runner.register(runner.plexus.scorecards())
    banking77 = runner.plexus.scorecards()["banking77"]

    before = runner.predict(banking77)
    old = _rows(before)
    retrained = runner.train(banking77, scores=["refund"]).metadata["plexus/model_versions"]
    after = runner.predict(banking77)

    assert _counts(before) == (3080, 0, 0, 0)
    assert _counts(after) == (0, 3080, 0, 0)
    new = _rows(after)
    assert len(new) == 3080 * 7
    assert not new.duplicated(["item_id", "score_key"]).any()
    assert set(new.loc[new["score_key"] == "refund", "model_version"]) == {retrained["refund"]}
    for rescored in ("refund", "refund_missing"):
        assert min(_scored_at(new, rescored)) > max(_scored_at(old, rescored))
    for kept in ("close_account", "cancel_transfer", "disputed_charge", "intent"):
        assert _scored_at(new, kept) == _scored_at(old, kept)
    close = new[(new["score_key"] == "close_account") & (new["value"] == "yes")]
    assert len(close) > 0


def test_an_unknown_source_fails_naming_the_declared_ones(
    runner: TaskRunner, instance: dg.DagsterInstance
) -> None:
    config = {"ops": {"predictions": {"config": {"source": "nope"}}}}

    with pytest.raises(TaskFailed, match=r"Unknown source 'nope'.*banking77_test, .*twacs"):
        runner.run("prediction_job", partition="twacs", config=config)
