"""The shape of a scorecard file: sections of scores, each a question with a classifier."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

KEY_PATTERN = r"^[a-z][a-z0-9_]*$"
# A capability a worker offers and a score or op may need: gpu, data:<dataset>, ...; it does not
# end in ":" (a "data:" without its data set).
CAPABILITY_PATTERN = r"^[a-z0-9](?:[a-z0-9_.:-]*[a-z0-9_.-])?$"

# The answers an evaluation records for a score that did not answer an item.
SKIPPED = "SKIPPED"  # a depends_on condition failed
ERROR = "ERROR"  # the classifier failed on the item


class LabelRule(BaseModel):
    """How a score's human label is derived from an item's labels.

    The value of ``field`` is looked up in ``map``; a value not in ``map`` becomes ``default``, or
    stays itself when there is no default.
    """

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="The item label this score is measured against.")
    map: dict[str, str] = Field(default_factory=dict, description="Label value to class.")
    default: str | None = Field(default=None, description="Class for values not in the map.")

    def derive(self, labels: dict[str, Any]) -> str | None:
        value = labels.get(self.field)
        if value is None or value == "":
            return None
        value = str(value)
        if value in self.map:
            return self.map[value]
        return self.default if self.default is not None else value


class ScoreConfig(BaseModel):
    """One question about an item, answered by a classifier."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    key: str = Field(pattern=KEY_PATTERN)
    question: str
    classifier: str = Field(alias="class", description="Classifier name, e.g. keyword.")
    parameters: dict[str, Any] = Field(default_factory=dict)
    classes: list[str] = Field(min_length=2, description="The answers this score can give.")
    label: LabelRule | None = Field(default=None, description="Omitted: never evaluated.")
    depends_on: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Score key to the answer(s) it must give for this score to run.",
    )
    needs: list[Annotated[str, Field(pattern=CAPABILITY_PATTERN)]] = Field(
        default_factory=list,
        description="Capabilities a worker must have to run this score, e.g. gpu or data:crm.",
    )

    def required_answers(self, key: str) -> set[str]:
        wanted = self.depends_on[key]
        return {wanted} if isinstance(wanted, str) else set(wanted)


class SectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    scores: list[ScoreConfig] = Field(min_length=1)


class ScorecardConfig(BaseModel):
    """A scorecard: the questions asked of every item of a source."""

    model_config = ConfigDict(extra="forbid")

    name: str
    key: str = Field(pattern=KEY_PATTERN, description="Identifier; the partition key.")
    description: str = ""
    source: str = Field(description="The source whose items are evaluated.")
    train_source: str | None = Field(
        default=None, description="The source trained classifiers learn from."
    )
    sections: list[SectionConfig] = Field(min_length=1)

    @property
    def scores(self) -> list[ScoreConfig]:
        return [score for section in self.sections for score in section.scores]
