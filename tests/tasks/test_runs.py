"""What the task runner decides to run first: stale items, models of changed data."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from plexus_dagster.definitions import build_definitions
from plexus_dagster.settings import PROJECT_ROOT
from plexus_dagster.tasks.runs import TaskFailed, TaskRunner
from tests.conftest import make_settings

TRAINED_CARD = """\
name: Trained delays
key: trained_delays
source: twacs
train_source: twacs
sections:
  - name: Main
    scores:
      - name: Delay
        key: delay
        question: Is the conversation about a delay?
        class: tfidf_logreg
        classes: [yes, no]
        label: {field: tag, map: {DELAY: yes}, default: no}
"""


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    sources, cards = tmp_path / "sources", tmp_path / "scorecards"
    sources.mkdir()
    cards.mkdir()
    shutil.copy(PROJECT_ROOT / "sources" / "twacs.yaml", sources / "twacs.yaml")
    (cards / "trained.yaml").write_text(TRAINED_CARD)
    return {"sources_dir": sources, "scorecards_dir": cards, "storage": tmp_path / "storage"}


def evaluate(
    data_dir: Path, folders: dict[str, Path], instance: dg.DagsterInstance
) -> tuple[TaskRunner, dict[str, object]]:
    settings = make_settings(
        data_dir,
        folders["storage"],
        sources_dir=folders["sources_dir"],
        scorecards_dir=folders["scorecards_dir"],
    )
    defs = build_definitions(settings)
    runner = TaskRunner(defs, instance)
    catalog = defs.resources["plexus"].catalog()
    runner.register(catalog.scorecards)
    _, summary = runner.evaluate(catalog.find("trained_delays"))
    assert summary is not None
    return runner, summary


def test_editing_a_source_reloads_its_items_and_retrains_on_them(
    data_dir: Path, folders: dict[str, Path], instance: dg.DagsterInstance
) -> None:
    _, first = evaluate(data_dir, folders, instance)
    _, again = evaluate(data_dir, folders, instance)
    source = folders["sources_dir"] / "twacs.yaml"
    source.write_text(source.read_text() + "    filter: \"tag in ['DELAY', 'BAGGAGE']\"\n")
    _, filtered = evaluate(data_dir, folders, instance)

    jobs = [run.job_name for run in reversed(instance.get_runs())]
    assert jobs == [
        "items_job",
        "train_job",
        "evaluation_job",
        "evaluation_job",
        "items_job",
        "train_job",
        "evaluation_job",
    ]
    assert first["items"] == again["items"] == 491
    assert filtered["items"] == 85 + 40
    assert first["model_versions"] == again["model_versions"] != filtered["model_versions"]


def test_a_trained_score_whose_labels_give_one_class_fails_with_the_reason(
    data_dir: Path, folders: dict[str, Path], instance: dg.DagsterInstance
) -> None:
    card = folders["scorecards_dir"] / "trained.yaml"
    card.write_text(TRAINED_CARD.replace("map: {DELAY: yes}", "map: {NOTHING: yes}"))

    with pytest.raises(TaskFailed, match="Score 'delay' of scorecard 'trained_delays' cannot be"):
        evaluate(data_dir, folders, instance)
