"""The evaluation job run in process against a test instance, asserting on its events."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from plexus_dagster.definitions import build_definitions
from plexus_dagster.scorecards.partitions import register_scorecards
from plexus_dagster.settings import PlexusSettings
from plexus_dagster.tasks.runs import TaskFailed, TaskRunner
from tests.conftest import make_settings


def test_twacs_evaluation_stores_results_and_plots_metrics(
    runner: TaskRunner, instance: dg.DagsterInstance
) -> None:
    scorecards = runner.plexus.scorecards()

    result, summary = runner.evaluate(scorecards["twacs"])

    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == "twacs"
    event = instance.get_latest_materialization_event(dg.AssetKey("evaluation_results"))
    assert event is not None
    assert event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert event.asset_materialization.partition == "twacs"
    assert metadata["delay/accuracy"].value == pytest.approx(summary["scores"]["delay"]["accuracy"])
    assert metadata["plexus/items"].value == 491
    matrix = summary["scores"]["delay"]["confusion_matrix"]["matrix"]
    table = metadata["delay/confusion_matrix"]
    assert isinstance(table, dg.TableMetadataValue)
    assert [column.name for column in table.schema.columns] == ["label \\ answer", "yes", "no"]
    assert [record.data for record in table.records] == [
        {"label \\ answer": "yes", "yes": matrix[0][0], "no": matrix[0][1]},
        {"label \\ answer": "no", "yes": matrix[1][0], "no": matrix[1][1]},
    ]
    metrics = metadata["metrics"]
    assert isinstance(metrics, dg.TableMetadataValue)
    delay = next(record.data for record in metrics.records if record.data["score"] == "delay")
    assert delay["evaluated"] == summary["scores"]["delay"]["evaluated"]
    assert delay["f1"] == pytest.approx(summary["scores"]["delay"]["f1"], abs=1e-4)

    results = pd.read_parquet(summary["results_path"])
    assert list(results.columns) == [
        "item_id",
        "score_key",
        "predicted",
        "label",
        "correct",
        "explanation",
        "confidence",
    ]
    assert len(results) == 491 * 2
    assert not results.duplicated(["item_id", "score_key"]).any()
    assert set(results["predicted"]) == {"yes", "no"}
    baggage = results[results["score_key"] == "baggage"]
    assert (baggage["correct"] == (baggage["predicted"] == baggage["label"])).all()


def test_a_sample_with_a_seed_is_repeatable(
    runner: TaskRunner, instance: dg.DagsterInstance
) -> None:
    scorecards = runner.plexus.scorecards()

    _, first = runner.evaluate(scorecards["twacs"], sample_size=50, seed=7)
    _, second = runner.evaluate(scorecards["twacs"], sample_size=50, seed=7)
    _, other = runner.evaluate(scorecards["twacs"], sample_size=50, seed=8)

    def ids(summary: dict[str, object]) -> list[str]:
        return sorted(set(pd.read_parquet(str(summary["results_path"]))["item_id"]))

    assert first["items"] == 50
    assert ids(first) == ids(second) != ids(other)


def test_items_metadata_counts_skipped_rows(
    data_dir: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    sources = tmp_path / "sources"
    sources.mkdir()
    rows = tmp_path / "rows.csv"
    rows.write_text("id,text,tag\n1,hello,a\n2,,a\n1,again,b\n3,fine,b\n")
    (sources / "rows.yaml").write_text(
        f"sources:\n  - name: rows\n    format: csv\n    path: {rows}\n"
        "    columns: {id: id, text: text, labels: [tag]}\n"
    )
    settings = make_settings(data_dir, tmp_path / "storage", sources_dir=sources)
    defs = build_definitions(settings)

    TaskRunner(defs, instance).ensure_items(["rows"])

    event = instance.get_latest_materialization_event(dg.AssetKey(["items", "rows"]))
    assert event is not None
    assert event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert metadata["plexus/items"].value == 2
    assert metadata["plexus/rejected"].value == 2
    assert "duplicate id 1" in str(metadata["plexus/rejected_sample"].value)


def test_an_unknown_scorecard_fails_with_the_known_ones(
    settings: PlexusSettings, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(settings)
    register_scorecards(instance, ["ghost"])

    with pytest.raises(
        TaskFailed,
        match=r"Unknown scorecard 'ghost'; known scorecards: banking77, banking77_gpu, twacs",
    ):
        TaskRunner(defs, instance).run("evaluation_job", partition="ghost")


def test_an_evaluation_without_items_says_how_to_make_them(
    settings: PlexusSettings, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(settings)
    register_scorecards(instance, ["twacs"])

    with pytest.raises(TaskFailed, match="Items of source 'twacs' have not been materialized"):
        TaskRunner(defs, instance).run("evaluation_job", partition="twacs")


def test_a_scorecard_broken_after_registration_fails_before_scoring(
    data_dir: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    cards = tmp_path / "scorecards"
    cards.mkdir()
    project = Path(__file__).resolve().parents[2] / "scorecards" / "twacs.yaml"
    broken = project.read_text().replace("class: keyword", "class: magic", 1)
    (cards / "twacs.yaml").write_text(broken)
    settings = make_settings(data_dir, tmp_path / "storage", scorecards_dir=cards)
    defs = build_definitions(settings)
    register_scorecards(instance, ["twacs"])

    with pytest.raises(TaskFailed, match=r"twacs.yaml:\d+: unknown class 'magic'"):
        TaskRunner(defs, instance).run("evaluation_job", partition="twacs")
