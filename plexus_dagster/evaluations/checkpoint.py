"""Answers kept batch by batch, so that a retried run does not score items again.

A run lost with its worker is retried as a new run with the same root run. The answers of each
scored batch are written under the root run's folder as they are made; the retry reads them
back and scores only the items they do not cover. A checkpoint serves only runs with the same
model versions, and is removed when its run has stored its results.
"""

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from plexus_dagster.evaluations.scoring import RESULT_COLUMNS


class Checkpoint:
    """The answers stored so far by the attempts of one run."""

    def __init__(self, folder: Path, model_versions: dict[str, str]) -> None:
        self.folder = folder
        self.model_versions = model_versions
        self._parts = 0

    def load(self, item_ids: Sequence[str], score_keys: Sequence[str]) -> pd.DataFrame:
        """Stored answers for ``item_ids``, of items answered for every score in ``score_keys``.

        A checkpoint made with other model versions is discarded.
        """
        meta = self.folder / "checkpoint.json"
        parts = sorted(self.folder.glob("part-*.parquet"))
        self._parts = len(parts)
        if not parts or not meta.exists():
            return pd.DataFrame(columns=RESULT_COLUMNS)
        if json.loads(meta.read_text()).get("model_versions") != self.model_versions:
            self.discard()
            return pd.DataFrame(columns=RESULT_COLUMNS)
        stored = pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)
        stored = stored[stored["item_id"].isin(set(item_ids))]
        stored = stored.drop_duplicates(["item_id", "score_key"], keep="last")
        answered = stored.groupby("item_id")["score_key"].nunique()
        complete = set(answered[answered == len(set(score_keys))].index)
        return stored[stored["item_id"].isin(complete)].reset_index(drop=True)

    def save(self, answers: pd.DataFrame) -> None:
        """Adds one batch of answers; each part appears whole or not at all."""
        if self._parts == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / "checkpoint.json").write_text(
                json.dumps({"model_versions": self.model_versions})
            )
        path = self.folder / f"part-{self._parts:06d}.parquet"
        partial = path.with_suffix(".partial")
        answers.to_parquet(partial, index=False)
        partial.replace(path)
        self._parts += 1

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self._parts = 0
