"""Comparing answers with human labels: per-item results and the per-score summary."""

import json
from typing import Any

import numpy as np
import pandas as pd

from plexus_dagster.evaluations.metrics import agreement
from plexus_dagster.scorecards.models import ERROR, SKIPPED, ScorecardConfig

METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "ac1", "kappa")


def attach_labels(
    scorecard: ScorecardConfig, items: pd.DataFrame, answers: pd.DataFrame
) -> pd.DataFrame:
    """Per-item results: the answers with each score's human label and whether they agree.

    ``label`` is empty where the item has no label for the score; ``correct`` is empty where
    there is nothing to compare (no label, or the score was skipped or failed).
    """
    # Items repeat a few label combinations many times: derive once per distinct combination.
    labels_of_item = pd.Series(items["labels"].to_numpy(), index=items["item_id"].to_numpy())
    parsed = {text: json.loads(text) for text in pd.unique(labels_of_item)}
    labels_of_row = pd.Series(labels_of_item.reindex(answers["item_id"]).to_numpy())
    score_keys = answers["score_key"].to_numpy()

    labels = np.full(len(answers), None, dtype=object)
    for score in scorecard.scores:
        if score.label is None:
            continue
        rule = score.label
        derived = {text: rule.derive(value) for text, value in parsed.items()}
        rows = score_keys == score.key
        labels[rows] = labels_of_row[rows].map(derived).to_numpy()

    predicted = answers["predicted"].to_numpy()
    compared = pd.notna(labels) & ~np.isin(predicted, [SKIPPED, ERROR])
    correct = pd.array([pd.NA] * len(answers), dtype="boolean")
    correct[compared] = predicted[compared] == labels[compared]
    results = answers.assign(label=labels, correct=correct)
    columns = ["item_id", "score_key", "predicted", "label", "correct", "explanation"]
    return results[[*columns, "confidence"]].reset_index(drop=True)


def summarize(scorecard: ScorecardConfig, results: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Figures per score key: agreement metrics, distributions and item counts."""
    parts = dict(tuple(results.groupby("score_key", sort=False)))
    summary = {}
    for score in scorecard.scores:
        part = parts.get(score.key, results.iloc[0:0])
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
            "predicted_distribution": answered["predicted"].value_counts().to_dict(),
            "actual_distribution": part["label"].dropna().value_counts().to_dict(),
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
