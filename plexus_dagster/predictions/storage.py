"""Stored predictions: one Parquet file per scorecard and source, one row per item and score.

A run reads the file, scores what is missing or out of date and writes the whole file again,
renamed into place, so that a reader sees either the old file or the new one. A lock file
beside it keeps two runs of the same scorecard and source from interleaving.
"""

import fcntl
import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

PREDICTION_COLUMNS = [
    "item_id",
    "score_key",
    "value",
    "explanation",
    "confidence",
    "model_version",
    "text_hash",
    "scored_at",
]


class PredictionsError(RuntimeError):
    """The stored predictions cannot be read."""


def predictions_path(root: Path, scorecard: str, source: str) -> Path:
    return root / scorecard / f"{source}.parquet"


def empty_predictions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": pd.Series(dtype=str),
            "score_key": pd.Series(dtype=str),
            "value": pd.Series(dtype=str),
            "explanation": pd.Series(dtype=str),
            "confidence": pd.Series(dtype=float),
            "model_version": pd.Series(dtype=str),
            "text_hash": pd.Series(dtype=str),
            "scored_at": pd.Series(dtype="datetime64[us, UTC]"),
        }
    )


def read_predictions(path: Path) -> pd.DataFrame:
    """The stored predictions at ``path``; none when the file does not exist yet."""
    if not path.exists():
        return empty_predictions()
    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # a truncated or foreign file fails in many ways
        raise PredictionsError(
            f"The stored predictions {path} cannot be read ({type(e).__name__}: {e}). "
            "Delete the file to score every item again."
        ) from e
    missing = [column for column in PREDICTION_COLUMNS if column not in frame.columns]
    if missing:
        raise PredictionsError(
            f"The stored predictions {path} lack the columns {', '.join(missing)}. "
            "Delete the file to score every item again."
        )
    return frame[PREDICTION_COLUMNS]


def write_predictions(frame: pd.DataFrame, path: Path) -> None:
    """Writes ``frame`` to ``path`` whole, then renames it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    frame[PREDICTION_COLUMNS].to_parquet(partial, index=False)
    partial.replace(path)


@contextmanager
def locked(path: Path, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Holds the lock of the predictions at ``path``; ``on_wait`` hears when another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def text_hashes(texts: Sequence[str]) -> list[str]:
    """A short hash of each text, so that an item whose text changed is scored again."""
    return [hashlib.blake2b(text.encode(), digest_size=8).hexdigest() for text in texts]


def merge_predictions(
    stored: pd.DataFrame, fresh: pd.DataFrame, *, score_keys: Sequence[str]
) -> pd.DataFrame:
    """``stored`` with the rows ``fresh`` replaces, and without rows of scores no longer kept.

    One row per item and score: a row of ``fresh`` replaces the stored row of its item and score.
    """
    kept = stored[stored["score_key"].isin(list(score_keys))]
    replaced = pd.MultiIndex.from_frame(kept[["item_id", "score_key"]]).isin(
        pd.MultiIndex.from_frame(fresh[["item_id", "score_key"]])
    )
    parts = [frame for frame in (kept[~replaced], fresh[PREDICTION_COLUMNS]) if not frame.empty]
    if not parts:
        return empty_predictions()
    return pd.concat(parts, ignore_index=True)
