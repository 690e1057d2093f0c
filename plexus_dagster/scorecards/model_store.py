"""Versioned artifacts of trained classifiers.

A model lives at ``<models>/<scorecard>/<score>/<version>/`` with ``model.joblib`` and
``model.json``. Versions sort by the time of training. A model only serves a score whose
configuration has the fingerprint it was trained with, so editing a score retires its models.
"""

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from plexus_dagster.scorecards.models import ScorecardConfig, ScoreConfig

logger = logging.getLogger(__name__)


def fingerprint(
    scorecard: ScorecardConfig, score: ScoreConfig, train_data: str | None = None
) -> str:
    """A short hash of everything that decides what a trained score learns."""
    decisive = {
        "train_source": scorecard.train_source,
        "train_data": train_data,
        "class": score.classifier,
        "parameters": score.parameters,
        "classes": score.classes,
        "label": score.label.model_dump() if score.label else None,
    }
    encoded = json.dumps(decisive, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:12]


@dataclass(frozen=True)
class StoredModel:
    """A trained model on disk and what is known of it."""

    path: Path
    info: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.info["version"])

    def load(self) -> Any:
        return joblib.load(self.path / "model.joblib")


class ModelStore:
    """Saves and finds trained models under one folder.

    ``train_data`` names the signature of a source's stored items, so that a model trained on
    items that have changed since no longer counts as current.
    """

    def __init__(
        self, root: Path, *, train_data: Callable[[str], str | None] | None = None
    ) -> None:
        self.root = root
        self.train_data = train_data

    def _fingerprint(self, scorecard: ScorecardConfig, score: ScoreConfig) -> str:
        source = scorecard.train_source
        data = self.train_data(source) if self.train_data and source else None
        return fingerprint(scorecard, score, data)

    def save(
        self,
        scorecard: ScorecardConfig,
        score: ScoreConfig,
        model: Any,
        *,
        info: dict[str, Any],
    ) -> StoredModel:
        trained_at = datetime.now(UTC)
        version = f"{trained_at:%Y%m%dT%H%M%S%f}Z"
        folder = self.root / scorecard.key / score.key / version
        folder.mkdir(parents=True)
        joblib.dump(model, folder / "model.joblib")
        full_info = {
            "version": version,
            "scorecard": scorecard.key,
            "score": score.key,
            "fingerprint": self._fingerprint(scorecard, score),
            "trained_at": trained_at.isoformat(),
            **info,
        }
        # model.json is renamed into place last: a folder without it is an interrupted save.
        partial = folder / "model.json.partial"
        partial.write_text(json.dumps(full_info, indent=2))
        partial.replace(folder / "model.json")
        return StoredModel(path=folder, info=full_info)

    def latest(self, scorecard: ScorecardConfig, score: ScoreConfig) -> StoredModel | None:
        """The newest model trained with the score's current configuration, if any."""
        folder = self.root / scorecard.key / score.key
        wanted = self._fingerprint(scorecard, score)
        for version in sorted(folder.glob("*/model.json"), reverse=True):
            try:
                info = json.loads(version.read_text())
            except (OSError, json.JSONDecodeError):
                logger.warning("Ignoring the unreadable model description %s.", version)
                continue
            if info.get("fingerprint") == wanted:
                return StoredModel(path=version.parent, info=info)
        return None
