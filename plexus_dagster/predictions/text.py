"""Scoring one text in this process, without a task, as `plexus predict --text` does.

Nothing here imports Dagster: loading the models is the slow part, and answering a text once
they are loaded takes a few milliseconds.
"""

import math
import time
from dataclasses import dataclass
from typing import Any

from plexus_dagster.evaluations.scoring import ReadyScore, ScoringErrors, load_scores, score_batch
from plexus_dagster.predictions.planning import score_versions
from plexus_dagster.scorecards.model_store import ModelStore
from plexus_dagster.scorecards.models import ScorecardConfig
from plexus_dagster.settings import PlexusSettings
from plexus_dagster.sources.normalize import read_signature


@dataclass(frozen=True)
class LoadedScorecard:
    """A scorecard with every score ready to answer, and how long loading took."""

    config: ScorecardConfig
    scores: list[ReadyScore]
    load_seconds: float

    @property
    def versions(self) -> dict[str, str]:
        return score_versions(self.scores)


def model_store(settings: PlexusSettings) -> ModelStore:
    """The model store of ``settings``, as the tasks see it."""

    def train_data(source: str) -> str | None:
        return read_signature(settings.items_dir / f"{source}.parquet")

    return ModelStore(settings.models_dir, train_data=train_data)


def load_scorecard(config: ScorecardConfig, settings: PlexusSettings) -> LoadedScorecard:
    """Loads every score of ``config``; `MissingModelError` names the training to run."""
    began = time.perf_counter()
    scores = load_scores(config, model_store(settings))
    return LoadedScorecard(config, scores, time.perf_counter() - began)


@dataclass(frozen=True)
class TextScores:
    """Each score's answer for one text, by score key, and how long answering took."""

    answers: dict[str, dict[str, Any]]
    seconds: float
    errors: ScoringErrors


def score_text(loaded: LoadedScorecard, text: str) -> TextScores:
    """Each score's value, explanation and confidence (None when it has none) for ``text``."""
    errors = ScoringErrors()
    began = time.perf_counter()
    rows = score_batch(loaded.scores, ["text"], [text], errors)
    seconds = time.perf_counter() - began
    by_key = {
        str(key): {
            "value": str(value),
            "explanation": str(explanation),
            "confidence": None if math.isnan(confidence) else confidence,
        }
        for key, value, explanation, confidence in zip(
            rows["score_key"],
            rows["predicted"],
            rows["explanation"],
            rows["confidence"].astype(float).tolist(),
            strict=True,
        )
    }
    answers = {score.key: by_key[score.key] for score in loaded.config.scores}
    return TextScores(answers, seconds, errors)
