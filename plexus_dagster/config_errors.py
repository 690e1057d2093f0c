"""Turning pydantic validation errors on YAML documents into messages with file and line."""

from pathlib import Path
from typing import Any

import pydantic

from plexus_dagster.yaml_lines import YamlFileError, line_of


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"])
    if error["type"] == "missing":
        return f"missing field {location!r}"
    if error["type"] == "extra_forbidden":
        return f"unknown field {location!r}; check its spelling"
    return f"{location}: {message}" if location else message


def validation_errors(
    path: Path,
    document: Any,
    error: pydantic.ValidationError,
    *,
    prefix: tuple[str | int, ...] = (),
) -> list[YamlFileError]:
    """One `YamlFileError` per problem pydantic found, each at the line it concerns."""
    found = []
    for item in error.errors():
        location = prefix + tuple(item["loc"])
        found.append(YamlFileError(path, line_of(document, location), _describe(item)))
    return found
