"""Source declarations: where a data set lives and which columns mean what."""

from pathlib import Path
from typing import Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from plexus_dagster.config_errors import validation_errors
from plexus_dagster.yaml_lines import LineDict, YamlFileError, load_yaml


class SourceColumns(BaseModel):
    """Which columns of a source hold the parts of an item."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, description="Column of unique item ids; without it, the row number."
    )
    text: str | None = Field(default=None, description="Column of the item's text.")
    labels: list[str] = Field(default_factory=list, description="Columns of human labels.")
    metadata: list[str] = Field(default_factory=list, description="Columns kept as metadata.")


class ConversationFormat(BaseModel):
    """How multi-turn conversations are written in a source's columns.

    The ``tagged`` format writes each turn as ``<speaker__ text __speaker>``.
    """

    model_config = ConfigDict(extra="forbid")

    columns: list[str] = Field(min_length=1, description="Columns holding turns, in order.")
    format: Literal["tagged"] = "tagged"
    speakers: dict[str, str] = Field(
        default_factory=dict, description="Speaker tag to the name shown, e.g. cust: customer."
    )


class SourceConfig(BaseModel):
    """One data set: its location, format and column mapping."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Identifier, snake_case.")
    description: str = ""
    format: Literal["csv", "jsonl", "parquet"]
    path: str | None = Field(
        default=None, description="File path, relative to the data folder unless absolute."
    )
    url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="http(s) URL, used when the path is not given or not present.",
    )
    split: str | None = Field(default=None, description="Which split of a data set this is.")
    dataset: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description=(
            "The data set a worker needs access to (capability data:<dataset>) to read this "
            "source; the top folder of a relative path, else the source name, when unset."
        ),
    )
    filter: str | None = Field(
        default=None, description="pandas query keeping the rows that match, e.g. tag != 'UNK'."
    )
    columns: SourceColumns
    conversation: ConversationFormat | None = None

    @pydantic.model_validator(mode="after")
    def _has_location_and_text(self) -> "SourceConfig":
        if self.path is None and self.url is None:
            raise ValueError("a source needs a path, a url, or both")
        if self.columns.text is None and self.conversation is None:
            raise ValueError("a source needs columns.text or a conversation section")
        return self


class SourceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig]


class SourceConfigError(ValueError):
    """One or more source files are invalid; ``errors`` holds each problem."""

    def __init__(self, errors: list[YamlFileError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


def load_source_file(path: Path) -> list[SourceConfig]:
    """Reads and validates one source YAML file."""
    document = load_yaml(path)
    if not isinstance(document, LineDict):
        raise SourceConfigError(
            [YamlFileError(path, 1, "expected a mapping with a 'sources' list")]
        )
    try:
        return SourceFile.model_validate(document).sources
    except pydantic.ValidationError as e:
        raise SourceConfigError(validation_errors(path, document, e)) from e


def load_sources(folder: Path) -> dict[str, SourceConfig]:
    """Every source declared in the YAML files of ``folder``, keyed by name."""
    if not folder.is_dir():
        raise SourceConfigError(
            [
                YamlFileError(
                    folder, None, "the sources folder does not exist; set PLEXUS_SOURCES_DIR"
                )
            ]
        )
    sources: dict[str, SourceConfig] = {}
    errors: list[YamlFileError] = []
    for path in sorted(folder.glob("*.y*ml")):
        try:
            declared = load_source_file(path)
        except YamlFileError as e:
            errors.append(e)
            continue
        except SourceConfigError as e:
            errors.extend(e.errors)
            continue
        for source in declared:
            if source.name in sources:
                errors.append(
                    YamlFileError(path, None, f"source {source.name!r} is declared twice")
                )
            sources[source.name] = source
    if errors:
        raise SourceConfigError(errors)
    return sources


def label_fields(sources: dict[str, SourceConfig]) -> dict[str, list[str]]:
    """Each source's name and the label fields its items carry."""
    return {name: source.columns.labels for name, source in sources.items()}
