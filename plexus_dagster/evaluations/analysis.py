"""Comparing answers with human labels: per-item results and the per-score summary."""

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from plexus_dagster.evaluations.metrics import agreement
from plexus_dagster.evaluations.scoring import ERROR, SKIPPED
from plexus_dagster.scorecards.models import ScorecardConfig
from plexus_dagster.sources.normalize import read_labels

METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "ac1", "kappa")


def attach_labels(
    scorecard: ScorecardConfig, items: pd.DataFrame, answers: pd.DataFrame
) -> pd.DataFrame:
    """Per-item results: the answers with each score's human label and whether they agree.

    ``label`` is empty where the item has no label for the score; ``correct`` is empty where
    there is nothing to compare (no label, or the score was skipped or failed).
    """
    item_labels = dict(zip(items["item_id"], read_labels(items), strict=True))
    parts = []
    for score in scorecard.scores:
        part = answers[answers["score_key"] == score.key]
        labels: list[str | None] = [None] * len(part)
        if score.label is not None:
            rule = score.label
            labels = [rule.derive(item_labels[item_id]) for item_id in part["item_id"]]
        label_series = pd.Series(labels, index=part.index, dtype=object)
        compared = label_series.notna() & ~part["predicted"].isin([SKIPPED, ERROR])
        correct = pd.Series(pd.NA, index=part.index, dtype="boolean")
        correct[compared] = (part["predicted"] == label_series)[compared]
        parts.append(part.assign(label=label_series, correct=correct))
    results = pd.concat(parts) if parts else answers.assign(label=None, correct=None)
    columns = ["item_id", "score_key", "predicted", "label", "correct", "explanation"]
    return results.sort_index()[[*columns, "confidence"]].reset_index(drop=True)


def summarize(scorecard: ScorecardConfig, results: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Figures per score key: agreement metrics, distributions and item counts."""
    summary = {}
    for score in scorecard.scores:
        part = results[results["score_key"] == score.key]
        skipped = part["predicted"] == SKIPPED
        failed = part["predicted"] == ERROR
        compared = part[part["correct"].notna()]
        figures = agreement(
            compared["label"].tolist(), compared["predicted"].tolist(), score.classes
        )
        answered = part[~skipped & ~failed]
        summary[score.key] = {
            "name": score.name,
            "question": score.question,
            **figures,
            "predicted_distribution": dict(Counter(answered["predicted"].tolist())),
            "actual_distribution": dict(Counter(part["label"].dropna().tolist())),
            "evaluated": len(compared),
            "skipped": int(skipped.sum()),
            "errors": int(failed.sum()),
            "unlabelled": int((~skipped & ~failed & part["label"].isna()).sum()),
        }
    return summary


def metric_rows(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per score with its headline figures, for tables."""
    rows = []
    for key, figures in summary.items():
        row: dict[str, Any] = {"score": key}
        for name in METRIC_NAMES:
            value = figures[name]
            row[name] = None if value is None or np.isnan(value) else round(value, 4)
        for name in ("evaluated", "skipped", "errors"):
            row[name] = figures[name]
        rows.append(row)
    return rows
