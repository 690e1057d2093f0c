import logging
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest

from plexus_dagster.scorecards.classifiers import (
    EmbeddingClassifier,
    EmbeddingParameters,
    classifier_needs,
    stratified_sample,
)
from plexus_dagster.scorecards.embeddings import EncoderUnavailable
from plexus_dagster.scorecards.loader import load_scorecard
from plexus_dagster.settings import PROJECT_ROOT
from plexus_dagster.sources.models import label_fields, load_sources

INTENTS = [
    "card_arrival",
    "request_refund",
    "lost_or_stolen_card",
    "exchange_rate",
    "top_up_failed",
]


def subset(path: Path, per_intent: int) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame = frame[frame["category"].isin(INTENTS)]
    return frame.groupby("category").sample(n=per_intent, random_state=0)


@pytest.fixture(scope="module")
def banking77(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = subset(data_dir / "banking77" / "train.csv", 30)
    test = subset(data_dir / "banking77" / "test.csv", 20)
    return train, test


@pytest.fixture(scope="module")
def model(banking77: tuple[pd.DataFrame, pd.DataFrame]) -> EmbeddingClassifier:
    train, _ = banking77
    return EmbeddingClassifier.fit(
        EmbeddingParameters(), train["text"].tolist(), train["category"].tolist(), score="intent"
    )


def test_held_out_items_are_classified_far_above_chance(
    model: EmbeddingClassifier, banking77: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, test = banking77

    predicted = model.predict(test["text"].tolist())

    accuracy = (pd.Series(predicted.values, index=test.index) == test["category"]).mean()
    assert sorted(model.classes) == sorted(INTENTS)
    assert accuracy > 0.8  # chance is 0.2 for five balanced intents
    assert all(0.2 <= c <= 1 for c in predicted.confidences if c is not None)
    assert predicted.explanations[0].startswith("MiniLM embedding logistic regression: ")


def test_the_pickled_model_is_small_and_holds_nothing_of_torch(
    model: EmbeddingClassifier, banking77: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    _, test = banking77
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    texts = test["text"].tolist()[:5]
    script = (
        "import sys, joblib\n"
        f"model = joblib.load({str(path)!r})\n"
        "print('torch' in sys.modules)\n"
        f"print(model.predict({texts!r}).values)\n"
    )

    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )

    dumped = pickle.dumps(model)
    assert len(dumped) < 100_000
    assert b"torch" not in dumped
    imported, values = loaded.stdout.splitlines()
    assert imported == "False"  # the encoder loads at the first text, not with the model
    assert values == str(model.predict(texts).values)


def test_a_score_that_asks_for_cuda_runs_on_the_cpu_without_one_and_says_so(
    banking77: tuple[pd.DataFrame, pd.DataFrame], caplog: pytest.LogCaptureFixture
) -> None:
    import torch

    train, _ = banking77
    caplog.set_level(logging.INFO, logger="plexus_dagster.scorecards.embeddings")

    fitted = EmbeddingClassifier.fit(
        EmbeddingParameters(device="cuda", max_train_items=50),
        train["text"].tolist(),
        train["category"].tolist(),
        score="asks_for_cuda",
    )

    if torch.cuda.is_available():
        assert fitted.device == "cuda"
        assert "embedding score 'asks_for_cuda': running on CUDA" in caplog.text
    else:
        assert fitted.device == "cpu"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert [r.getMessage() for r in warnings] == [
            "embedding score 'asks_for_cuda' asks for device cuda but no CUDA device is "
            "present; running on the CPU."
        ]
    assert fitted.predict(["my card has not arrived yet"]).values == ["card_arrival"]


def test_auto_logs_the_device_it_chose(
    model: EmbeddingClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    import torch

    caplog.set_level(logging.INFO, logger="plexus_dagster.scorecards.embeddings")
    renamed = EmbeddingClassifier(model.head, model.encoder, "auto_device", model.classes)

    renamed.predict(["what is the exchange rate today"])

    expected = (
        "embedding score 'auto_device': running on CUDA"
        if torch.cuda.is_available()
        else "embedding score 'auto_device': no CUDA device, running on the CPU."
    )
    assert expected in caplog.text


def test_without_torch_the_error_says_how_to_install_it(
    model: EmbeddingClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what Python does when torch is missing
    renamed = EmbeddingClassifier(model.head, model.encoder, "no_torch", model.classes)

    with pytest.raises(EncoderUnavailable, match=r"pip install -e '\.\[embedding\]'"):
        renamed.prepare()


def test_a_stratified_sample_keeps_each_class_and_its_share() -> None:
    labels = ["no"] * 970 + ["yes"] * 29 + ["rare"]

    chosen = stratified_sample(labels, 100)

    picked = [labels[i] for i in chosen]
    assert picked.count("no") == 97
    assert picked.count("yes") == 3
    assert picked.count("rare") == 1
    assert chosen == stratified_sample(labels, 100)
    assert len(set(chosen)) == len(chosen)


def test_only_an_embedding_score_set_to_cuda_needs_a_gpu() -> None:
    assert classifier_needs("embedding", {"device": "cuda"}) == frozenset({"gpu"})
    assert classifier_needs("embedding", {"device": "auto"}) == frozenset()
    assert classifier_needs("embedding", {}) == frozenset()
    assert classifier_needs("tfidf_logreg", {"device": "cuda"}) == frozenset()


def test_the_gpu_scorecard_validates_without_importing_torch() -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from plexus_dagster.scorecards.classifiers import classifier_needs\n"
        "from plexus_dagster.scorecards.loader import load_scorecard\n"
        "from plexus_dagster.sources.models import label_fields, load_sources\n"
        "sources = label_fields(load_sources(Path('sources')))\n"
        "card = load_scorecard(Path('scorecards/banking77_gpu.yaml'), known_sources=sources)\n"
        "print(sorted(s.key for s in card.config.scores))\n"
        "print({sorted(classifier_needs(s.classifier, s.parameters))[0]"
        " for s in card.config.scores})\n"
        "print('torch' in sys.modules)\n"
    )

    validated = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )

    assert validated.stdout.splitlines() == [
        "['intent', 'lost_or_compromised_card', 'refund']",
        "{'gpu'}",
        "False",
    ]
    card = load_scorecard(
        PROJECT_ROOT / "scorecards" / "banking77_gpu.yaml",
        known_sources=label_fields(load_sources(PROJECT_ROOT / "sources")),
    )
    assert card.config.key == "banking77_gpu"
    assert len(card.config.scores[-1].classes) == 77
