"""Answering every score of a scorecard for a batch of items, in dependency order."""

import graphlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from plexus_dagster.scorecards.classifiers import (
    CLASSIFIERS,
    Classifier,
    Predictions,
    build_untrained,
)
from plexus_dagster.scorecards.embeddings import EncoderUnavailable
from plexus_dagster.scorecards.model_store import ModelStore
from plexus_dagster.scorecards.models import ERROR, SKIPPED, ScorecardConfig, ScoreConfig
from plexus_dagster.tasks.progress import TaskProgress

logger = logging.getLogger(__name__)

RESULT_COLUMNS = ["item_id", "score_key", "predicted", "explanation", "confidence"]


class MissingModelError(LookupError):
    """A trained score has no usable model: none for its configuration, or one that cannot run."""


@dataclass(frozen=True)
class ReadyScore:
    """A score with its classifier loaded, and the model version when it is trained."""

    config: ScoreConfig
    classifier: Classifier
    model_version: str | None = None


def dependency_order(scorecard: ScorecardConfig) -> list[ScoreConfig]:
    """The scorecard's scores, each after the scores it depends on."""
    by_key = {score.key: score for score in scorecard.scores}
    graph = {score.key: set(score.depends_on) for score in scorecard.scores}
    return [by_key[key] for key in graphlib.TopologicalSorter(graph).static_order()]


def untrained_scores(scorecard: ScorecardConfig, store: ModelStore) -> list[str]:
    """Keys of trained scores with no model for their current configuration; nothing is loaded."""
    return [
        score.key
        for score in scorecard.scores
        if CLASSIFIERS[score.classifier].trainable and store.latest(scorecard, score) is None
    ]


def load_scores(scorecard: ScorecardConfig, store: ModelStore) -> list[ReadyScore]:
    """Every score ready to predict, in dependency order; trained scores use their latest model."""
    ready = []
    for score in dependency_order(scorecard):
        if not CLASSIFIERS[score.classifier].trainable:
            ready.append(ReadyScore(score, build_untrained(score.classifier, score.parameters)))
            continue
        stored = store.latest(scorecard, score)
        if stored is None:
            raise MissingModelError(
                f"Score '{score.key}' of scorecard '{scorecard.key}' has no model trained with "
                f"its current configuration. Train it first: launch train_job for partition "
                f"'{scorecard.key}' (in the UI: Jobs, train_job, Materialize) or run "
                f"`plexus train --scorecard {scorecard.key}`."
            )
        try:
            model = stored.load()
        except Exception as e:  # a truncated or foreign file fails in many ways
            raise MissingModelError(
                f"The model of score '{score.key}' at {stored.path} cannot be loaded "
                f"({type(e).__name__}: {e}). Train it again: plexus train --scorecard "
                f"{scorecard.key}."
            ) from e
        prepare = getattr(model, "prepare", None)
        if prepare is not None:
            try:
                prepare()
            except EncoderUnavailable as e:
                raise MissingModelError(
                    f"Score '{score.key}' of scorecard '{scorecard.key}': {e}"
                ) from e
        ready.append(ReadyScore(score, model, stored.version))
    return ready


class TooManyFailures(RuntimeError):
    """More items failed than the task allows."""


@dataclass
class ScoringErrors:
    """Items whose answer failed, by score; the first few keep their reason."""

    count: int = 0
    first: list[dict[str, str]] = field(default_factory=list)
    items: set[str] = field(default_factory=set)
    last_item: str | None = None
    keep: int = 20

    def add(self, score_key: str, item_id: str, error: Exception) -> None:
        self.count += 1
        self.items.add(item_id)
        self.last_item = item_id
        if len(self.first) < self.keep:
            reason = f"{type(error).__name__}: {error}"
            self.first.append({"score_key": score_key, "item_id": item_id, "reason": reason})


def _predict_isolating_failures(
    score: ReadyScore, item_ids: Sequence[str], texts: Sequence[str], errors: ScoringErrors
) -> Predictions:
    try:
        return score.classifier.predict(texts)
    except Exception:  # a classifier may fail on any input; find which items it fails on
        logger.warning(
            "Score '%s' failed on a batch of %d items; retrying them one at a time.",
            score.config.key,
            len(texts),
        )
    merged = Predictions([], [], [])
    for item_id, text in zip(item_ids, texts, strict=True):
        try:
            one = score.classifier.predict([text])
        except Exception as e:  # recorded per item; the evaluation goes on
            errors.add(score.config.key, item_id, e)
            one = Predictions([ERROR], [f"{type(e).__name__}: {e}"], [None])
        merged.values.extend(one.values)
        merged.explanations.extend(one.explanations)
        merged.confidences.extend(one.confidences)
    return merged


def score_batch(
    scores: Sequence[ReadyScore],
    item_ids: Sequence[str],
    texts: Sequence[str],
    errors: ScoringErrors,
) -> pd.DataFrame:
    """Answers of every score for one batch, a row per item and score.

    A score whose ``depends_on`` conditions fail for an item is ``SKIPPED`` for that item.
    """
    answers: dict[str, np.ndarray] = {}
    frames = []
    ids = np.asarray(item_ids, dtype=object)
    for score in scores:
        runs = np.ones(len(ids), dtype=bool)
        for other in score.config.depends_on:
            wanted = list(score.config.required_answers(other))
            runs &= np.isin(answers[other], wanted)
        chosen = np.flatnonzero(runs)
        predicted = _predict_isolating_failures(
            score, ids[chosen].tolist(), [texts[int(i)] for i in chosen], errors
        )

        values = np.full(len(ids), SKIPPED, dtype=object)
        values[chosen] = predicted.values
        explanations = np.full(len(ids), "a depends_on condition was not met", dtype=object)
        explanations[chosen] = predicted.explanations
        confidences = np.full(len(ids), np.nan)
        confidences[chosen] = [np.nan if c is None else c for c in predicted.confidences]
        answers[score.config.key] = values
        frames.append(
            pd.DataFrame(
                {
                    "item_id": ids,
                    "score_key": score.config.key,
                    "predicted": values,
                    "explanation": explanations,
                    "confidence": confidences,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def score_items(
    scores: Sequence[ReadyScore],
    items: pd.DataFrame,
    *,
    batch_size: int = 5000,
    progress: TaskProgress | None = None,
    max_failed_items: int | None = None,
    errors: ScoringErrors | None = None,
    on_batch: Callable[[pd.DataFrame], None] | None = None,
) -> tuple[pd.DataFrame, ScoringErrors]:
    """Answers of every score for every item, in batches counted on ``progress``.

    ``on_batch`` gets each batch's answers as soon as they are made. Failures add to ``errors``
    when given. Raises `TooManyFailures` as soon as more than ``max_failed_items`` items have
    failed.
    """
    errors = errors if errors is not None else ScoringErrors()
    ids = items["item_id"].tolist()
    texts = items["text"].tolist()
    frames = []
    start, size = 0, min(16, batch_size)
    while start < len(ids):
        end = start + size
        if progress is not None:
            progress.item_id = ids[start]
        began = time.perf_counter()
        frames.append(score_batch(scores, ids[start:end], texts[start:end], errors))
        if on_batch is not None:
            on_batch(frames[-1])
        if progress is not None:
            progress.advance(len(ids[start:end]))
        # Batches of about a second, as often as progress is written: fast scorecards keep
        # large vectorized batches (each classifier call has a fixed cost), slow ones still
        # move their progress and name the item they are on.
        per_item = (time.perf_counter() - began) / len(ids[start:end])
        size = max(1, min(batch_size, int(1.0 / per_item) if per_item else batch_size))
        start = end
        if max_failed_items is not None and len(errors.items) > max_failed_items:
            if progress is not None:
                progress.item_id = errors.last_item
            first = errors.first[0]
            raise TooManyFailures(
                f"{len(errors.items)} items failed, more than the {max_failed_items} allowed; "
                f"the first, item {first['item_id']!r} of score '{first['score_key']}': "
                f"{first['reason']}"
            )
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS), errors
    return pd.concat(frames, ignore_index=True), errors
