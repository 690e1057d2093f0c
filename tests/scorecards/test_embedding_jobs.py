"""An embedding scorecard trained and evaluated by the project's jobs, on four banking77 intents."""

import json
from pathlib import Path

import dagster as dg

from plexus_dagster.definitions import build_definitions
from plexus_dagster.tasks.runs import TaskRunner
from tests.conftest import make_settings

INTENTS = [
    "card_swallowed",
    "card_acceptance",
    "virtual_card_not_working",
    "contactless_not_working",
]

SOURCES = f"""\
sources:
  - name: cards_train
    format: csv
    path: banking77/train.csv
    filter: "category in {INTENTS}"
    columns: {{text: text, labels: [category]}}
  - name: cards_test
    format: csv
    path: banking77/test.csv
    filter: "category in {INTENTS}"
    columns: {{text: text, labels: [category]}}
"""

CARD = f"""\
name: Card problems
key: card_problems
source: cards_test
train_source: cards_train
sections:
  - name: Cards
    scores:
      - name: Intent
        key: intent
        question: Which card problem is it?
        class: embedding
        parameters: {{device: cuda}}
        classes: {INTENTS}
        label: {{field: category}}
      - name: Contactless
        key: contactless
        question: Does contactless payment fail?
        class: embedding
        parameters: {{C: 4.0, class_weight: balanced}}
        classes: [yes, no]
        label: {{field: category, map: {{contactless_not_working: yes}}, default: no}}
"""


def test_an_embedding_scorecard_trains_and_evaluates_far_above_chance(
    data_dir: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    import torch

    (tmp_path / "sources").mkdir()
    (tmp_path / "scorecards").mkdir()
    (tmp_path / "sources" / "cards.yaml").write_text(SOURCES)
    (tmp_path / "scorecards" / "cards.yaml").write_text(CARD)
    settings = make_settings(
        data_dir,
        tmp_path / "storage",
        sources_dir=tmp_path / "sources",
        scorecards_dir=tmp_path / "scorecards",
    )
    defs = build_definitions(settings)
    runner = TaskRunner(defs, instance)
    scorecard = defs.resources["plexus"].scorecards()["card_problems"]
    runner.register({"card_problems": scorecard})

    _, summary = runner.evaluate(scorecard)

    assert summary is not None
    assert summary["items"] == 4 * 40
    intent, contactless = summary["scores"]["intent"], summary["scores"]["contactless"]
    assert intent["evaluated"] == 160
    assert intent["accuracy"] > 0.85  # chance is 0.25
    assert contactless["f1"] > 0.8
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for key in ("intent", "contactless"):
        infos = list((tmp_path / "storage" / "models" / "card_problems" / key).glob("*/model.json"))
        assert [json.loads(info.read_text())["device"] for info in infos] == [device]
    train_run = next(r for r in instance.get_runs() if r.job_name == "train_job")
    logs = [e.message for e in instance.all_logs(train_run.run_id) if e.message]
    assert any(
        f"Trained score 'intent' on 196 items of 'cards_train' on {device}" in m for m in logs
    )
