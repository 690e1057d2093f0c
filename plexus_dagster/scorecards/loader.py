"""Reading scorecard files and refusing bad ones before any run starts."""

import graphlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from plexus_dagster.config_errors import validation_errors
from plexus_dagster.scorecards.classifiers import CLASSIFIERS, rule_answers
from plexus_dagster.scorecards.models import ERROR, SKIPPED, ScorecardConfig, ScoreConfig
from plexus_dagster.yaml_lines import LineDict, YamlFileError, line_of, load_yaml

# Answers the evaluation writes itself; no score may use them as classes.
RESERVED_ANSWERS = {SKIPPED, ERROR}

# Each declared source's name, and the label fields its items have.
SourceLabels = Mapping[str, Collection[str]]


class ScorecardError(ValueError):
    """One or more scorecards are invalid; ``errors`` holds each problem with file and line."""

    def __init__(self, errors: list[YamlFileError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


@dataclass(frozen=True)
class Scorecard:
    """A validated scorecard and the file it came from."""

    config: ScorecardConfig
    path: Path

    @property
    def key(self) -> str:
        return self.config.key


def _semantic_errors(
    path: Path, document: Any, scorecard: ScorecardConfig, known_sources: SourceLabels | None
) -> list[YamlFileError]:
    errors: list[YamlFileError] = []

    def error(location: tuple[str | int, ...], message: str) -> None:
        errors.append(YamlFileError(path, line_of(document, location), message))

    if known_sources is not None:
        for field in ("source", "train_source"):
            name = getattr(scorecard, field)
            if name is not None and name not in known_sources:
                known = ", ".join(sorted(known_sources)) or "none"
                error((field,), f"unknown source {name!r}; declared sources: {known}")

    def check_label_field(where: tuple[str | int, ...], score: ScoreConfig) -> None:
        if known_sources is None or score.label is None:
            return
        used: list[str | None] = [scorecard.source]
        if CLASSIFIERS.get(score.classifier) and CLASSIFIERS[score.classifier].trainable:
            used.append(scorecard.train_source)
        for source in used:
            labels = known_sources.get(source or "")
            if labels is not None and score.label.field not in labels:
                declared = ", ".join(sorted(labels)) or "none"
                error(
                    (*where, "label", "field"),
                    f"score {score.key!r}: label field {score.label.field!r} is not a label of "
                    f"source {source!r} (its labels: {declared})",
                )

    classes_by_key: dict[str, set[str]] = {}
    graph: dict[str, set[str]] = {}
    for s, section in enumerate(scorecard.sections):
        for i, score in enumerate(section.scores):
            where: tuple[str | int, ...] = ("sections", s, "scores", i)
            reserved = sorted(set(score.classes) & RESERVED_ANSWERS)
            if reserved:
                error(
                    (*where, "classes"),
                    f"class {reserved[0]!r} is reserved for scores that did not answer; rename it",
                )
            repeated = sorted({c for c in score.classes if score.classes.count(c) > 1})
            if repeated:
                error((*where, "classes"), f"class {repeated[0]!r} is listed twice")
            if score.key in classes_by_key:
                error((*where, "key"), f"duplicate score key {score.key!r}; keys must be unique")
            else:
                classes_by_key[score.key] = set(score.classes)
                graph[score.key] = set(score.depends_on)

            check_label_field(where, score)
            kind = CLASSIFIERS.get(score.classifier)
            if kind is None:
                known = ", ".join(sorted(CLASSIFIERS))
                error((*where, "class"), f"unknown class {score.classifier!r}; known: {known}")
                continue
            try:
                parameters = kind.parameters.model_validate(score.parameters)
            except pydantic.ValidationError as e:
                errors.extend(validation_errors(path, document, e, prefix=(*where, "parameters")))
                continue
            for answer in sorted(rule_answers(parameters) - set(score.classes)):
                error((*where, "parameters"), f"answer {answer!r} is not in classes")
            if kind.trainable and scorecard.train_source is None:
                error(
                    (*where, "class"),
                    f"score {score.key!r} is trained ({kind.name}) but the scorecard has no "
                    "train_source; add one",
                )
            if kind.trainable and score.label is None:
                error((*where,), f"score {score.key!r} is trained but has no label rule")
            if score.label is not None:
                derived = set(score.label.map.values())
                if score.label.default is not None:
                    derived.add(score.label.default)
                for answer in sorted(derived - set(score.classes)):
                    error((*where, "label"), f"label class {answer!r} is not in classes")

    for s, section in enumerate(scorecard.sections):
        for i, score in enumerate(section.scores):
            for other in score.depends_on:
                where = ("sections", s, "scores", i, "depends_on", other)
                if other not in classes_by_key:
                    error(where, f"depends_on names unknown score {other!r}")
                    continue
                if not score.required_answers(other):
                    error(where, f"depends_on {other!r} lists no answer, so the score never runs")
                for answer in sorted(score.required_answers(other) - classes_by_key[other]):
                    error(where, f"score {other!r} never answers {answer!r}")

    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        cycle = e.args[1]
        where = _depends_on_location(scorecard, cycle[0]) or ("sections",)
        error(where, f"depends_on forms a cycle: {' -> '.join(cycle)}")
    return errors


def _depends_on_location(scorecard: ScorecardConfig, key: str) -> tuple[str | int, ...] | None:
    for s, section in enumerate(scorecard.sections):
        for i, score in enumerate(section.scores):
            if score.key == key and score.depends_on:
                return ("sections", s, "scores", i, "depends_on")
    return None


def load_scorecard(path: Path, *, known_sources: SourceLabels | None = None) -> Scorecard:
    """Reads and validates one scorecard file; every problem is reported, not just the first."""
    try:
        document = load_yaml(path)
    except YamlFileError as e:
        raise ScorecardError([e]) from e
    if document is None:
        raise ScorecardError([YamlFileError(path, None, "the file is empty")])
    if not isinstance(document, LineDict):
        kind = type(document).__name__
        raise ScorecardError(
            [YamlFileError(path, 1, f"a scorecard file must be a mapping of fields, not a {kind}")]
        )
    try:
        config = ScorecardConfig.model_validate(document)
    except pydantic.ValidationError as e:
        raise ScorecardError(validation_errors(path, document, e)) from e
    errors = _semantic_errors(path, document, config, known_sources)
    if errors:
        raise ScorecardError(errors)
    return Scorecard(config=config, path=path)


def scorecard_files(*targets: Path) -> list[Path]:
    """The scorecard files at ``targets``: files themselves, or the YAML files of folders.

    A file named twice, directly or through its folder, is listed once.
    """
    files: dict[Path, Path] = {}
    for target in targets:
        found = (
            sorted([*target.glob("*.yaml"), *target.glob("*.yml")]) if target.is_dir() else [target]
        )
        for path in found:
            files.setdefault(path.resolve(), path)
    return list(files.values())


@dataclass
class ScorecardCatalog:
    """The scorecards of some files: those that are valid, and the problems of the others."""

    scorecards: dict[str, Scorecard]
    errors: list[YamlFileError]
    broken_keys: dict[str, list[YamlFileError]]

    def find(self, key: str) -> Scorecard:
        """The valid scorecard ``key``; `ScorecardError` if its file is invalid, else KeyError."""
        if key in self.scorecards:
            return self.scorecards[key]
        if key in self.broken_keys:
            raise ScorecardError(self.broken_keys[key])
        known = ", ".join(sorted(self.scorecards)) or "none"
        raise KeyError(f"unknown scorecard {key!r}; known scorecards: {known}")


def _declared_key(path: Path) -> str | None:
    try:
        document = load_yaml(path)
    except YamlFileError:
        return None
    key = document.get("key") if isinstance(document, dict) else None
    return key if isinstance(key, str) else None


def catalog_scorecards(
    paths: Iterable[Path], *, known_sources: SourceLabels | None = None
) -> ScorecardCatalog:
    """Validates every file and keeps the valid ones; one bad file does not hide the others."""
    catalog = ScorecardCatalog(scorecards={}, errors=[], broken_keys={})
    for path in paths:
        if not path.exists():
            catalog.errors.append(YamlFileError(path, None, "no such file or folder"))
            continue
        try:
            scorecard = load_scorecard(path, known_sources=known_sources)
        except ScorecardError as e:
            catalog.errors.extend(e.errors)
            key = _declared_key(path)
            if key is not None:
                catalog.broken_keys.setdefault(key, []).extend(e.errors)
            continue
        if scorecard.key in catalog.scorecards:
            first = catalog.scorecards[scorecard.key].path
            problem = YamlFileError(
                path, None, f"scorecard key {scorecard.key!r} is already used by {first}"
            )
            catalog.errors.append(problem)
            continue
        catalog.scorecards[scorecard.key] = scorecard
    return catalog


def load_scorecards(
    paths: Iterable[Path], *, known_sources: SourceLabels | None = None
) -> dict[str, Scorecard]:
    """Validates every file; raises one `ScorecardError` listing all problems of all files."""
    catalog = catalog_scorecards(paths, known_sources=known_sources)
    if catalog.errors:
        raise ScorecardError(catalog.errors)
    return catalog.scorecards
