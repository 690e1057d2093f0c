"""A task's progress read back through the instance, after jobs run in process."""

from collections.abc import Sequence

import dagster as dg
import pytest

from plexus_dagster.definitions import build_definitions
from plexus_dagster.scorecards.classifiers import KeywordClassifier, Predictions
from plexus_dagster.settings import PlexusSettings
from plexus_dagster.tasks.reading import TaskReader, list_tasks
from plexus_dagster.tasks.runs import TaskFailed, TaskRunner


def test_an_evaluation_reports_every_stage_its_resources_and_results(
    runner: TaskRunner, instance: dg.DagsterInstance
) -> None:
    scorecards = runner.plexus.scorecards()

    result, summary = runner.evaluate(scorecards["twacs"])

    view = TaskReader(instance, result.run_id).poll()
    document = view.to_dict()
    assert document["status"] == "SUCCESS"
    assert document["job"] == "evaluation_job"
    assert document["partition"] == "twacs"
    assert [s["name"] for s in document["stages"]] == [
        "Setup",
        "Load items",
        "Score",
        "Analyze",
        "Store",
    ]
    assert {s["status"] for s in document["stages"]} == {"done"}
    score = document["stages"][2]
    assert (score["processed"], score["total"], score["percent"]) == (491, 491, 100.0)
    assert score["items_per_second"] > 0
    resources = document["resources"]
    assert resources["rss_bytes"] > 10_000_000
    assert 0 < resources["system_memory_percent"] < 100
    assert resources["gpus"] == []
    assert resources["gpu_status"] != "ok"
    assert document["error"] is None
    results = document["results"]["evaluation_results"]
    assert results["items"] == 491
    assert results["results_path"] == summary["results_path"]
    assert results["metrics"]["delay"]["accuracy"] == pytest.approx(
        summary["scores"]["delay"]["accuracy"], abs=1e-4
    )


def test_the_runs_list_shows_the_stage_in_the_run_tags(
    settings: PlexusSettings, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(settings)
    runner = TaskRunner(defs, instance)
    runner.ensure_items(["twacs"])

    rows = list_tasks(instance, job="items_job")

    assert len(rows) == 1
    assert rows[0]["status"] == "SUCCESS"
    assert rows[0]["stage"] == "done"
    assert rows[0]["percent"] == 100.0
    assert rows[0]["eta"] is None  # a finished task expects no end


real_predict = KeywordClassifier.predict


def fails_on_delays(self: KeywordClassifier, texts: Sequence[str]) -> Predictions:
    """The real keyword classifier, failing on every conversation that mentions a delay."""
    if any("delay" in text.lower() for text in texts):
        raise RuntimeError("the classifier cannot read this conversation")
    return real_predict(self, texts)


def test_too_many_failed_items_fail_the_task_with_the_stage_count_and_item(
    runner: TaskRunner, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(KeywordClassifier, "predict", fails_on_delays)
    scorecards = runner.plexus.scorecards()

    with pytest.raises(TaskFailed, match="items failed, more than the 4 allowed") as raised:
        runner.evaluate(scorecards["twacs"], options={"max_error_share": 0.01})

    document = TaskReader(instance, raised.value.run_id).poll().to_dict()
    assert document["status"] == "FAILURE"
    error = document["error"]
    assert error["stage"] == "Score"
    assert error["processed"] > 0
    assert error["item_id"] is not None
    assert "the classifier cannot read this conversation" in error["message"]
    assert any("TooManyFailures" in line for line in error["exception_chain"])
    score = next(s for s in document["stages"] if s["name"] == "Score")
    assert score["status"] == "failed"


def test_items_that_fail_alone_are_counted_and_the_task_goes_on(
    runner: TaskRunner, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(KeywordClassifier, "predict", fails_on_delays)
    scorecards = runner.plexus.scorecards()

    _, summary = runner.evaluate(scorecards["twacs"], options={"max_error_share": 0.9})

    failed = summary["errors"]["items"]
    assert 0 < failed < 491
    assert summary["scores"]["delay"]["errors"] == failed
    assert summary["errors"]["first"][0]["reason"].startswith("RuntimeError: the classifier")
