"""Classifiers that answer a score's question about a batch of texts."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from plexus_dagster.scorecards.embeddings import EncoderSettings, encoder, resolve_device


@dataclass
class Predictions:
    """Answers for a batch of texts, position for position."""

    values: list[str]
    explanations: list[str]
    confidences: list[float | None]

    def __len__(self) -> int:
        return len(self.values)


class Classifier(Protocol):
    def predict(self, texts: Sequence[str]) -> Predictions: ...


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid regular expression {pattern!r}: {e}") from e
    except (OverflowError, RecursionError) as e:
        raise ValueError(f"regular expression {pattern!r} is too large to compile") from e
    return pattern


Regex = Annotated[str, AfterValidator(_compiles)]


class KeywordRule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    answer: str = Field(alias="class", description="The answer when a pattern matches.")
    patterns: list[Regex] = Field(min_length=1, description="Regular expressions, any matches.")


class KeywordParameters(BaseModel):
    """Regular-expression rules tried in order; the first rule with a match gives the answer."""

    model_config = ConfigDict(extra="forbid")

    rules: list[KeywordRule] = Field(min_length=1)
    default: str = Field(description="The answer when no rule matches.")
    ignore_case: bool = True

    def answers(self) -> set[str]:
        return {rule.answer for rule in self.rules} | {self.default}


class KeywordClassifier:
    """Answers with the first rule whose patterns match the text."""

    def __init__(self, parameters: KeywordParameters) -> None:
        flags = re.IGNORECASE if parameters.ignore_case else 0
        # Each pattern is compiled alone: joined into one, back-references and inline flags
        # of one pattern would reach into the others.
        self._rules = [
            (rule.answer, [re.compile(pattern, flags) for pattern in rule.patterns])
            for rule in parameters.rules
        ]
        self._default = parameters.default

    def _first_match(self, text: str) -> tuple[str, re.Match[str] | None]:
        for answer, patterns in self._rules:
            for pattern in patterns:
                match = pattern.search(text)
                if match:
                    return answer, match
        return self._default, None

    def predict(self, texts: Sequence[str]) -> Predictions:
        values: list[str] = []
        explanations: list[str] = []
        for text in texts:
            answer, match = self._first_match(text)
            values.append(answer)
            explanations.append(f"matched {match.group(0)!r}" if match else "no rule matched")
        return Predictions(values, explanations, [None] * len(values))


class TfidfParameters(BaseModel):
    """A TF-IDF bag of n-grams feeding a logistic regression."""

    model_config = ConfigDict(extra="forbid")

    c: float = Field(default=4.0, gt=0, alias="C", description="Inverse regularization.")
    ngram_max: int = Field(default=2, ge=1, le=3)
    min_df: int = Field(default=1, ge=1)
    class_weight: str | None = Field(default=None, pattern="^balanced$")
    max_iter: int = Field(default=1000, ge=10)


@dataclass
class TfidfClassifier:
    """A trained pipeline; ``fit`` learns it from labelled texts."""

    pipeline: Any  # a fitted sklearn Pipeline; sklearn loads only when a model is fit or used
    classes: list[str] = field(default_factory=list)

    @classmethod
    def fit(
        cls, parameters: TfidfParameters, texts: Sequence[str], labels: Sequence[str]
    ) -> "TfidfClassifier":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline

        pipeline = Pipeline(
            [
                (
                    "tfidf",
                    TfidfVectorizer(
                        ngram_range=(1, parameters.ngram_max),
                        min_df=parameters.min_df,
                        sublinear_tf=True,
                    ),
                ),
                (
                    "logreg",
                    LogisticRegression(
                        C=parameters.c,
                        class_weight=parameters.class_weight,
                        max_iter=parameters.max_iter,
                    ),
                ),
            ]
        )
        pipeline.fit(list(texts), list(labels))
        return cls(pipeline=pipeline, classes=[str(c) for c in pipeline.classes_])

    def predict(self, texts: Sequence[str]) -> Predictions:
        if not texts:
            return Predictions([], [], [])
        probabilities = self.pipeline.predict_proba(list(texts))
        best = probabilities.argmax(axis=1)
        confidences = probabilities[np.arange(len(best)), best].round(4).tolist()
        values = [self.classes[i] for i in best]
        explanations = [
            f"TF-IDF logistic regression: {v} with p={p:.2f}"
            for v, p in zip(values, confidences, strict=True)
        ]
        return Predictions(values, explanations, confidences)


class EmbeddingParameters(BaseModel):
    """MiniLM sentence embeddings feeding a logistic regression."""

    model_config = ConfigDict(extra="forbid")

    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="cuda asks for a GPU; without one the score runs on the CPU."
    )
    c: float = Field(default=10.0, gt=0, alias="C", description="Inverse regularization.")
    class_weight: str | None = Field(default=None, pattern="^balanced$")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Texts per encoder call.")
    max_iter: int = Field(default=1000, ge=10)
    max_train_items: int | None = Field(
        default=None,
        ge=2,
        description="Train on a stratified sample of this many items (seed 0); all when unset.",
    )


def stratified_sample(labels: Sequence[str], size: int, *, seed: int = 0) -> list[int]:
    """Positions of about ``size`` labels, each class in its share and at least once."""
    if size >= len(labels):
        return list(range(len(labels)))
    rng = np.random.default_rng(seed)
    values = np.asarray(labels, dtype=object)
    chosen: list[int] = []
    for label in sorted(set(labels)):
        positions = np.flatnonzero(values == label)
        take = max(1, round(len(positions) * size / len(labels)))
        chosen.extend(rng.choice(positions, size=take, replace=False).tolist())
    return sorted(chosen)


@dataclass
class EmbeddingClassifier:
    """A logistic regression over sentence embeddings.

    Pickled, it holds the fitted head and the encoder's settings; the encoder itself is loaded
    once per process when the first text is embedded.
    """

    head: Any  # a fitted sklearn LogisticRegression
    encoder: EncoderSettings
    score: str
    classes: list[str] = field(default_factory=list)

    @classmethod
    def fit(
        cls,
        parameters: EmbeddingParameters,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        score: str,
    ) -> "EmbeddingClassifier":
        from sklearn.linear_model import LogisticRegression

        settings = EncoderSettings(device=parameters.device, batch_size=parameters.batch_size)
        if parameters.max_train_items is not None:
            chosen = stratified_sample(labels, parameters.max_train_items)
            texts = [texts[i] for i in chosen]
            labels = [labels[i] for i in chosen]
        model = cls(head=None, encoder=settings, score=score)
        vectors = model.embed(texts)
        head = LogisticRegression(
            C=parameters.c, class_weight=parameters.class_weight, max_iter=parameters.max_iter
        )
        head.fit(vectors, list(labels))
        model.head = head
        model.classes = [str(c) for c in head.classes_]
        return model

    @property
    def device(self) -> str:
        """Where it runs in this process: cuda, or cpu when there is no CUDA device."""
        return resolve_device(self.encoder.device, score=self.score)

    def prepare(self) -> None:
        """Loads the encoder now rather than at the first text."""
        encoder(self.device)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return encoder(self.device).encode(
            list(texts), batch_size=self.encoder.batch_size, normalize=self.encoder.normalize
        )

    def predict(self, texts: Sequence[str]) -> Predictions:
        if not texts:
            return Predictions([], [], [])
        probabilities = self.head.predict_proba(self.embed(texts))
        best = probabilities.argmax(axis=1)
        confidences = probabilities[np.arange(len(best)), best].round(4).tolist()
        values = [self.classes[i] for i in best]
        explanations = [
            f"MiniLM embedding logistic regression: {v} with p={p:.2f}"
            for v, p in zip(values, confidences, strict=True)
        ]
        return Predictions(values, explanations, confidences)


@dataclass(frozen=True)
class ClassifierKind:
    """What a scorecard's ``class:`` names: its parameters and whether it is trained."""

    name: str
    parameters: type[BaseModel]
    trainable: bool
    description: str


CLASSIFIERS: dict[str, ClassifierKind] = {
    kind.name: kind
    for kind in [
        ClassifierKind("keyword", KeywordParameters, False, "regular-expression rules"),
        ClassifierKind("tfidf_logreg", TfidfParameters, True, "TF-IDF + logistic regression"),
        ClassifierKind(
            "embedding", EmbeddingParameters, True, "MiniLM embeddings + logistic regression"
        ),
    ]
}


def rule_answers(parameters: BaseModel) -> set[str]:
    """The answers a classifier's configuration names, to check against the score's classes."""
    if isinstance(parameters, KeywordParameters):
        return parameters.answers()
    return set()


def build_untrained(kind: str, parameters: dict[str, Any]) -> Classifier:
    """A classifier that needs no training, from its parameters."""
    if kind == "keyword":
        return KeywordClassifier(KeywordParameters.model_validate(parameters))
    raise ValueError(f"classifier {kind!r} must be trained before it can predict")


def train(
    kind: str,
    parameters: dict[str, Any],
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    score: str,
) -> Classifier:
    """A trained classifier of ``kind`` fit on labelled texts; ``score`` names it in logs."""
    if kind == "tfidf_logreg":
        return TfidfClassifier.fit(TfidfParameters.model_validate(parameters), texts, labels)
    if kind == "embedding":
        validated = EmbeddingParameters.model_validate(parameters)
        return EmbeddingClassifier.fit(validated, texts, labels, score=score)
    raise ValueError(f"classifier {kind!r} is not trained")


def classifier_needs(kind: str, parameters: dict[str, Any]) -> frozenset[str]:
    """What a worker must offer to run a score: ``gpu`` for an embedding score set to cuda."""
    if kind == "embedding" and parameters.get("device") == "cuda":
        return frozenset({"gpu"})
    return frozenset()
