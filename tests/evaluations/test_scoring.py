from collections.abc import Sequence

import pandas as pd

from plexus_dagster.evaluations.scoring import (
    ERROR,
    SKIPPED,
    ReadyScore,
    ScoringErrors,
    score_items,
)
from plexus_dagster.scorecards.classifiers import KeywordClassifier, KeywordParameters, Predictions
from plexus_dagster.scorecards.models import ScoreConfig


def keyword_score(key: str, pattern: str, **extra: object) -> ReadyScore:
    parameters = {"rules": [{"class": "yes", "patterns": [pattern]}], "default": "no"}
    config = ScoreConfig.model_validate(
        {
            "name": key,
            "key": key,
            "question": f"{key}?",
            "class": "keyword",
            "parameters": parameters,
            "classes": ["yes", "no"],
            **extra,
        }
    )
    return ReadyScore(config, KeywordClassifier(KeywordParameters.model_validate(parameters)))


class FailsOnWord:
    """Answers yes, except that it raises on texts holding ``word``."""

    def __init__(self, word: str) -> None:
        self.word = word

    def predict(self, texts: Sequence[str]) -> Predictions:
        for text in texts:
            if self.word in text:
                raise ValueError(f"cannot score {text!r}")
        return Predictions(["yes"] * len(texts), ["always"] * len(texts), [0.5] * len(texts))


ITEMS = pd.DataFrame(
    {
        "item_id": ["1", "2", "3", "4"],
        "text": ["close my account", "refund please", "close account, refund", "hello"],
    }
)


def test_a_score_is_skipped_where_its_dependency_gives_another_answer() -> None:
    close = keyword_score("close", "close")
    refund = keyword_score("refund", "refund", depends_on={"close": "yes"})

    answers, errors = score_items([close, refund], ITEMS, batch_size=3)

    refund_answers = answers[answers["score_key"] == "refund"].set_index("item_id")
    assert refund_answers["predicted"].to_dict() == {
        "1": "no",
        "2": SKIPPED,
        "3": "yes",
        "4": SKIPPED,
    }
    assert errors.count == 0
    assert len(answers) == 8


def test_an_item_that_fails_is_recorded_and_the_others_are_scored() -> None:
    config = keyword_score("fragile", "x").config
    fragile = ReadyScore(config, FailsOnWord("refund"))

    answers, errors = score_items([fragile], ITEMS)

    assert answers["predicted"].tolist() == ["yes", ERROR, ERROR, "yes"]
    assert errors.count == 2
    assert errors.first[0]["item_id"] == "2"
    assert "ValueError: cannot score 'refund please'" in errors.first[0]["reason"]


def test_errors_keep_only_the_first_reasons() -> None:
    errors = ScoringErrors(keep=2)
    for n in range(5):
        errors.add("s", str(n), RuntimeError("boom"))

    assert errors.count == 5
    assert [e["item_id"] for e in errors.first] == ["0", "1"]
