from pathlib import Path

from plexus_dagster.scorecards.classifiers import TfidfClassifier, TfidfParameters
from plexus_dagster.scorecards.model_store import ModelStore
from plexus_dagster.scorecards.models import ScorecardConfig

CARD = {
    "name": "Card",
    "key": "card",
    "source": "s",
    "train_source": "t",
    "sections": [
        {
            "name": "Main",
            "scores": [
                {
                    "name": "Refund",
                    "key": "refund",
                    "question": "Refund?",
                    "class": "tfidf_logreg",
                    "classes": ["yes", "no"],
                    "label": {"field": "category", "map": {"request_refund": "yes"}},
                }
            ],
        }
    ],
}


def fit() -> TfidfClassifier:
    texts = ["I want my money back", "refund me", "where is my card", "card not here"]
    return TfidfClassifier.fit(TfidfParameters(), texts, ["yes", "yes", "no", "no"])


def test_latest_is_the_newest_version_trained_with_the_current_configuration(
    tmp_path: Path,
) -> None:
    store = ModelStore(tmp_path)
    card = ScorecardConfig.model_validate(CARD)
    score = card.scores[0]

    first = store.save(card, score, fit(), info={})
    second = store.save(card, score, fit(), info={})

    latest = store.latest(card, score)
    assert latest is not None
    assert latest.version == second.version > first.version
    assert latest.load().predict(["give me a refund"]).values == ["yes"]


def test_editing_a_score_retires_its_models(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    card = ScorecardConfig.model_validate(CARD)
    store.save(card, card.scores[0], fit(), info={})

    edited = card.model_copy(deep=True)
    edited.sections[0].scores[0].parameters = {"C": 0.5}

    assert store.latest(edited, edited.scores[0]) is None


def test_an_interrupted_save_is_ignored(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    card = ScorecardConfig.model_validate(CARD)
    (tmp_path / "card" / "refund" / "99999999T000000000000Z").mkdir(parents=True)

    assert store.latest(card, card.scores[0]) is None
