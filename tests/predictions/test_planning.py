"""Which items and scores a run scores, from the stored rows and the current versions."""

from pathlib import Path

import pandas as pd
import pytest

from plexus_dagster.evaluations.scoring import ReadyScore, load_scores
from plexus_dagster.predictions.planning import Batch, plan_scoring, score_versions
from plexus_dagster.predictions.storage import text_hashes
from plexus_dagster.scorecards.loader import load_scorecards
from plexus_dagster.scorecards.model_store import ModelStore
from plexus_dagster.settings import PROJECT_ROOT


@pytest.fixture
def scores(tmp_path: Path) -> list[ReadyScore]:
    """The twacs scores, baggage asked only where delay says no."""
    text = (PROJECT_ROOT / "scorecards" / "twacs.yaml").read_text()
    card = tmp_path / "twacs.yaml"
    card.write_text(text + "        depends_on: {delay: 'no'}\n")
    config = load_scorecards([card])["twacs"].config
    return load_scores(config, ModelStore(tmp_path / "models"))


@pytest.fixture
def items(data_dir: Path) -> pd.DataFrame:
    rows = pd.read_csv(data_dir / "twacs" / "twacs_labeled_raw.csv", nrows=5)
    texts = rows["first_utterance"].astype(str).tolist()
    return pd.DataFrame(
        {"item_id": [f"i{n}" for n in range(5)], "text": texts, "text_hash": text_hashes(texts)}
    )


def _stored(items: pd.DataFrame, versions: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "item_id": item.item_id,
                "score_key": key,
                "model_version": version,
                "text_hash": item.text_hash,
            }
            for item in items.itertuples()
            for key, version in versions.items()
        ]
    )


def _by_ids(plan_batches: list[Batch]) -> dict[tuple[str, ...], tuple[list[str], list[str]]]:
    return {
        tuple(batch.items["item_id"]): (batch.score_keys, batch.stored_keys)
        for batch in plan_batches
    }


def test_current_answers_are_kept_and_missing_items_are_new(
    scores: list[ReadyScore], items: pd.DataFrame
) -> None:
    versions = score_versions(scores)
    stored = _stored(items.iloc[:3], versions)

    plan = plan_scoring(scores, versions, items, stored)

    assert (plan.new, plan.outdated, plan.current) == (2, 0, 3)
    assert _by_ids(plan.batches) == {("i3", "i4"): (["delay", "baggage"], ["delay", "baggage"])}


def test_an_outdated_answer_reruns_its_dependents_and_borrows_its_dependencies(
    scores: list[ReadyScore], items: pd.DataFrame
) -> None:
    versions = score_versions(scores)
    stored = _stored(items, versions)
    delay = (stored["item_id"] == "i0") & (stored["score_key"] == "delay")
    baggage = (stored["item_id"] == "i1") & (stored["score_key"] == "baggage")
    stored.loc[delay, "model_version"] = "config-old"
    stored.loc[baggage, "model_version"] = "config-old"
    stored.loc[stored["item_id"] == "i2", "text_hash"] = "edited"

    plan = plan_scoring(scores, versions, items, stored)

    assert (plan.new, plan.outdated, plan.current) == (0, 3, 2)
    assert _by_ids(plan.batches) == {
        ("i0", "i2"): (["delay", "baggage"], ["delay", "baggage"]),
        # delay runs only to hand baggage its answer; its stored answer stays.
        ("i1",): (["delay", "baggage"], ["baggage"]),
    }
