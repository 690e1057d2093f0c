"""Agreement between a score's answers and the human labels.

Every figure is computed from one confusion matrix, rows the human labels and columns the
answers, so that the figures cannot disagree with each other.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

YES = "yes"


@dataclass(frozen=True)
class ConfusionMatrix:
    labels: list[str]
    matrix: np.ndarray  # matrix[i, j]: items labelled labels[i] and answered labels[j]

    @classmethod
    def build(
        cls, actual: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
    ) -> "ConfusionMatrix":
        extra = sorted((set(actual) | set(predicted)) - set(labels))
        ordered = [*labels, *extra]
        index = {label: i for i, label in enumerate(ordered)}
        matrix = np.zeros((len(ordered), len(ordered)), dtype=np.int64)
        np.add.at(matrix, ([index[a] for a in actual], [index[p] for p in predicted]), 1)
        return cls(labels=ordered, matrix=matrix)

    @property
    def total(self) -> int:
        return int(self.matrix.sum())


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def per_class(matrix: ConfusionMatrix) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support of every class that occurs in labels or answers."""
    m = matrix.matrix
    figures: dict[str, dict[str, float | int]] = {}
    for i, label in enumerate(matrix.labels):
        true_positive = m[i, i]
        predicted, actual = m[:, i].sum(), m[i, :].sum()
        if predicted == 0 and actual == 0:
            continue
        precision = _ratio(true_positive, predicted)
        recall = _ratio(true_positive, actual)
        f1 = _ratio(2 * precision * recall, precision + recall)
        figures[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(actual),
        }
    return figures


def cohen_kappa(matrix: ConfusionMatrix) -> float:
    """Cohen's kappa: agreement beyond what the two marginal distributions give by chance."""
    n = matrix.total
    m = matrix.matrix
    observed = np.trace(m) / n
    expected = float((m.sum(axis=0) * m.sum(axis=1)).sum()) / (n * n)
    return _ratio(observed - expected, 1 - expected) if expected != 1 else 1.0


def gwet_ac1(matrix: ConfusionMatrix, categories: int) -> float:
    """Gwet's AC1 for two raters (the classifier and the human) over ``categories`` classes.

    Chance agreement is ``sum(pi_k * (1 - pi_k)) / (q - 1)``, with ``pi_k`` the mean of the two
    raters' shares of class k. Unlike kappa it stays stable when one class dominates.
    """
    n = matrix.total
    m = matrix.matrix
    observed = np.trace(m) / n
    shares = (m.sum(axis=0) + m.sum(axis=1)) / (2 * n)
    q = max(categories, len(matrix.labels))
    expected = float((shares * (1 - shares)).sum()) / (q - 1)
    return _ratio(observed - expected, 1 - expected) if expected != 1 else 1.0


def agreement(
    actual: Sequence[str], predicted: Sequence[str], classes: Sequence[str]
) -> dict[str, Any]:
    """All figures for one score over the items that have both a label and an answer.

    Yes/no scores report precision, recall and F1 of ``yes``; other scores report the macro
    average over the classes that occur, and each class's figures under ``per_class``.
    """
    if not actual:
        return {
            "accuracy": None,
            "precision": None,
            "recall": None,
            "f1": None,
            "ac1": None,
            "kappa": None,
            "confusion_matrix": {
                "labels": list(classes),
                "matrix": [],
                "rows": "label",
                "columns": "predicted",
            },
            "per_class": {},
        }
    matrix = ConfusionMatrix.build(actual, predicted, classes)
    classes_figures = per_class(matrix)
    if set(classes) == {YES, "no"}:
        headline = classes_figures.get(YES, {"precision": 0.0, "recall": 0.0, "f1": 0.0})
    else:
        headline = {
            name: float(np.mean([figures[name] for figures in classes_figures.values()]))
            for name in ("precision", "recall", "f1")
        }
    return {
        "accuracy": float(np.trace(matrix.matrix) / matrix.total),
        "precision": float(headline["precision"]),
        "recall": float(headline["recall"]),
        "f1": float(headline["f1"]),
        "ac1": gwet_ac1(matrix, len(classes)),
        "kappa": cohen_kappa(matrix),
        "confusion_matrix": {
            "labels": matrix.labels,
            "matrix": matrix.matrix.tolist(),
            "rows": "label",
            "columns": "predicted",
        },
        "per_class": classes_figures,
    }
