import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from plexus_dagster.evaluations.metrics import ConfusionMatrix, agreement, gwet_ac1


def test_gwet_ac1_matches_a_worked_example() -> None:
    # Ten items, human label first: 5 (yes, yes), 2 (yes, no), 1 (no, yes), 2 (no, no).
    # Observed agreement pa = 7/10 = 0.7.
    # The human says yes 7 times, the classifier 6 times: pi_yes = (0.7 + 0.6) / 2 = 0.65,
    # pi_no = 0.35. Chance agreement pe = (0.65 * 0.35 + 0.35 * 0.65) / (2 - 1) = 0.455.
    # AC1 = (0.7 - 0.455) / (1 - 0.455) = 0.245 / 0.545 = 0.449541...
    actual = ["yes"] * 7 + ["no"] * 3
    predicted = ["yes"] * 5 + ["no"] * 2 + ["yes"] + ["no"] * 2

    figures = agreement(actual, predicted, ["yes", "no"])

    assert figures["ac1"] == pytest.approx(0.245 / 0.545)
    assert figures["accuracy"] == pytest.approx(0.7)
    # Kappa's chance term uses the product of the marginals: 0.7 * 0.6 + 0.3 * 0.4 = 0.54.
    assert figures["kappa"] == pytest.approx((0.7 - 0.54) / 0.46)


def test_gwet_ac1_counts_every_class_the_score_can_give() -> None:
    # Three classes, one never used: q = 3 halves the chance term of the two used classes.
    matrix = ConfusionMatrix.build(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b", "c"])
    # pa = 0.75; pi_a = (0.5 + 0.25) / 2 = 0.375, pi_b = 0.625, pi_c = 0.
    expected_chance = (0.375 * 0.625 + 0.625 * 0.375) / 2

    assert gwet_ac1(matrix, 3) == pytest.approx((0.75 - expected_chance) / (1 - expected_chance))


def test_no_comparable_items_gives_no_figures() -> None:
    figures = agreement([], [], ["yes", "no"])

    assert figures["accuracy"] is None
    assert figures["ac1"] is None


def _results(summary: dict[str, object]) -> pd.DataFrame:
    frame = pd.read_parquet(str(summary["results_path"]))
    return frame[frame["correct"].notna()]


def test_yes_no_figures_match_scikit_learn_on_banking77(
    banking77_evaluation: dict[str, object],
) -> None:
    results = _results(banking77_evaluation)
    scores = banking77_evaluation["scores"]
    assert isinstance(scores, dict)

    for key in ("close_account", "refund", "cancel_transfer", "lost_or_compromised_card"):
        part = results[results["score_key"] == key]
        actual, predicted = part["label"].tolist(), part["predicted"].tolist()
        figures = scores[key]

        assert figures["evaluated"] == 3080
        assert figures["accuracy"] == pytest.approx(metrics.accuracy_score(actual, predicted))
        assert figures["precision"] == pytest.approx(
            metrics.precision_score(actual, predicted, pos_label="yes")
        )
        assert figures["recall"] == pytest.approx(
            metrics.recall_score(actual, predicted, pos_label="yes")
        )
        assert figures["f1"] == pytest.approx(metrics.f1_score(actual, predicted, pos_label="yes"))
        assert figures["kappa"] == pytest.approx(metrics.cohen_kappa_score(actual, predicted))
        expected = metrics.confusion_matrix(actual, predicted, labels=["yes", "no"])
        assert np.array_equal(figures["confusion_matrix"]["matrix"], expected)
        assert figures["confusion_matrix"]["labels"] == ["yes", "no"]


def test_multi_class_figures_are_macro_averages_matching_scikit_learn(
    banking77_evaluation: dict[str, object],
) -> None:
    results = _results(banking77_evaluation)
    part = results[results["score_key"] == "intent"]
    actual, predicted = part["label"].tolist(), part["predicted"].tolist()
    scores = banking77_evaluation["scores"]
    assert isinstance(scores, dict)
    figures = scores["intent"]

    precision, recall, f1, _ = metrics.precision_recall_fscore_support(
        actual, predicted, average="macro", zero_division=0
    )
    assert figures["accuracy"] == pytest.approx(metrics.accuracy_score(actual, predicted))
    assert figures["precision"] == pytest.approx(precision)
    assert figures["recall"] == pytest.approx(recall)
    assert figures["f1"] == pytest.approx(f1)
    assert figures["kappa"] == pytest.approx(metrics.cohen_kappa_score(actual, predicted))
    assert len(figures["per_class"]) == 77
    assert sum(figures["actual_distribution"].values()) == 3080
    # A real classifier on real data: far better than chance over 77 classes, and not perfect.
    assert 0.7 < figures["accuracy"] < 1.0
    assert not math.isnan(figures["ac1"])


def test_skipped_items_are_not_measured(banking77_evaluation: dict[str, object]) -> None:
    scores = banking77_evaluation["scores"]
    assert isinstance(scores, dict)
    refund_missing = scores["refund_missing"]

    assert refund_missing["skipped"] > 0
    assert refund_missing["evaluated"] + refund_missing["skipped"] == 3080
    assert refund_missing["evaluated"] == scores["refund"]["predicted_distribution"]["yes"]
