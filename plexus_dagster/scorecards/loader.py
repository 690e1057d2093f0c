"""Reading scorecard files and refusing bad ones before any run starts."""

import graphlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from plexus_dagster.config_errors import validation_errors
from plexus_dagster.scorecards.classifiers import CLASSIFIERS, rule_answers
from plexus_dagster.scorecards.models import ScorecardConfig
from plexus_dagster.yaml_lines import LineDict, YamlFileError, line_of, load_yaml


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
    path: Path, document: Any, scorecard: ScorecardConfig, known_sources: set[str] | None
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

    classes_by_key: dict[str, set[str]] = {}
    graph: dict[str, set[str]] = {}
    for s, section in enumerate(scorecard.sections):
        for i, score in enumerate(section.scores):
            where: tuple[str | int, ...] = ("sections", s, "scores", i)
            if score.key in classes_by_key:
                error((*where, "key"), f"duplicate score key {score.key!r}; keys must be unique")
            else:
                classes_by_key[score.key] = set(score.classes)
                graph[score.key] = set(score.depends_on)

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
                for answer in sorted(score.required_answers(other) - classes_by_key[other]):
                    error(where, f"score {other!r} never answers {answer!r}")

    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        cycle = " -> ".join(e.args[1])
        error(("sections",), f"depends_on forms a cycle: {cycle}")
    return errors


def load_scorecard(path: Path, *, known_sources: set[str] | None = None) -> Scorecard:
    """Reads and validates one scorecard file; every problem is reported, not just the first."""
    try:
        document = load_yaml(path)
    except YamlFileError as e:
        raise ScorecardError([e]) from e
    if not isinstance(document, LineDict):
        raise ScorecardError([YamlFileError(path, 1, "a scorecard file must be a mapping")])
    try:
        config = ScorecardConfig.model_validate(document)
    except pydantic.ValidationError as e:
        raise ScorecardError(validation_errors(path, document, e)) from e
    errors = _semantic_errors(path, document, config, known_sources)
    if errors:
        raise ScorecardError(errors)
    return Scorecard(config=config, path=path)


def scorecard_files(target: Path) -> list[Path]:
    """The scorecard files at ``target``: the file itself, or the YAML files of a folder."""
    if target.is_dir():
        return sorted([*target.glob("*.yaml"), *target.glob("*.yml")])
    return [target]


def load_scorecards(
    paths: Iterable[Path], *, known_sources: set[str] | None = None
) -> dict[str, Scorecard]:
    """Validates every file; raises one `ScorecardError` listing all problems of all files."""
    scorecards: dict[str, Scorecard] = {}
    errors: list[YamlFileError] = []
    for path in paths:
        if not path.exists():
            errors.append(YamlFileError(path, None, "no such file or folder"))
            continue
        try:
            scorecard = load_scorecard(path, known_sources=known_sources)
        except ScorecardError as e:
            errors.extend(e.errors)
            continue
        if scorecard.key in scorecards:
            first = scorecards[scorecard.key].path
            errors.append(
                YamlFileError(
                    path, None, f"scorecard key {scorecard.key!r} is already used by {first}"
                )
            )
            continue
        scorecards[scorecard.key] = scorecard
    if errors:
        raise ScorecardError(errors)
    return scorecards
