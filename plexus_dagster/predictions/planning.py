"""Deciding which items and scores a prediction run must score, and which are current.

A stored answer is current when it was given by the score's current version (the model version
of a trained score, a hash of the configuration of an untrained one) to the item's current text,
and every answer it depended on is current too. A score whose answer is out of date is scored
again with every score that depends on it; the scores it depends on run with it, so that it has
their answers, and give the same answers again.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from plexus_dagster.evaluations.scoring import ReadyScore
from plexus_dagster.scorecards.models import ScoreConfig


def config_version(score: ScoreConfig) -> str:
    """The version of an untrained score: a hash of what decides its answers."""
    decisive = {"class": score.classifier, "parameters": score.parameters, "classes": score.classes}
    digest = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()
    return f"config-{digest[:12]}"


def score_versions(scores: Sequence[ReadyScore]) -> dict[str, str]:
    """The current version of each score, by key."""
    return {s.config.key: s.model_version or config_version(s.config) for s in scores}


@dataclass(frozen=True)
class Batch:
    """Items that need the same scores run."""

    score_keys: list[str]
    items: pd.DataFrame


@dataclass(frozen=True)
class Plan:
    """What a run scores: batches of items, and how many items are new, out of date, current."""

    batches: list[Batch] = field(default_factory=list)
    new: int = 0
    outdated: int = 0
    current: int = 0

    @property
    def to_score(self) -> int:
        return self.new + self.outdated


def plan_scoring(
    scores: Sequence[ReadyScore],
    versions: Mapping[str, str],
    items: pd.DataFrame,
    stored: pd.DataFrame,
) -> Plan:
    """Which scores each item needs, from ``items`` (with ``text_hash``) and the ``stored`` rows.

    ``scores`` are in dependency order, as `load_scores` returns them.
    """
    keys = [s.config.key for s in scores]
    ids = items["item_id"].astype(str)
    hashes = pd.Series(items["text_hash"].to_numpy(), index=ids.to_numpy())
    up_to_date = (
        (stored["model_version"] == stored["score_key"].map(versions))
        & (stored["text_hash"] == stored["item_id"].map(hashes))
    ).to_numpy()
    answered = pd.MultiIndex.from_frame(stored.loc[up_to_date, ["item_id", "score_key"]])
    fresh = {key: pd.MultiIndex.from_arrays([ids, [key] * len(ids)]).isin(answered) for key in keys}

    # An answer is out of date with any answer it depends on.
    needed: dict[str, np.ndarray] = {}
    for score in scores:
        stale = ~fresh[score.config.key]
        for other in score.config.depends_on:
            stale = stale | needed[other]
        needed[score.config.key] = stale
    # A score runs where a score that depends on it runs, to hand it its answers.
    runs = dict(needed)
    for score in reversed(scores):
        for other in score.config.depends_on:
            runs[other] = runs[other] | runs[score.config.key]

    matrix = np.column_stack([runs[key] for key in keys]) if keys else np.zeros((len(ids), 0))
    any_run = matrix.any(axis=1)
    known = ids.isin(stored["item_id"]).to_numpy()
    batches = []
    if any_run.any():
        patterns, inverse = np.unique(matrix[any_run], axis=0, return_inverse=True)
        chosen = items[any_run]
        for number, pattern in enumerate(patterns):
            run_keys = [key for key, runs_it in zip(keys, pattern, strict=True) if runs_it]
            batches.append(Batch(run_keys, chosen[inverse.reshape(-1) == number]))
    return Plan(
        batches=batches,
        new=int((any_run & ~known).sum()),
        outdated=int((any_run & known).sum()),
        current=int((~any_run).sum()),
    )
