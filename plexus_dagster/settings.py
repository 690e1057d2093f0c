"""Where the project keeps its inputs and outputs, read from the environment."""

from functools import cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path | None:
    shared = PROJECT_ROOT.parent / "shared" / "data"
    return shared if shared.is_dir() else None


class PlexusSettings(BaseSettings):
    """Folders the project reads from and writes to; each can be set with ``PLEXUS_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="PLEXUS_")

    data_dir: Path | None = Field(
        default_factory=_default_data_dir,
        description="Folder holding the labelled data sets; ../shared/data when present.",
    )
    scorecards_dir: Path = Field(
        default=PROJECT_ROOT / "scorecards", description="Folder of scorecard YAML files."
    )
    sources_dir: Path = Field(
        default=PROJECT_ROOT / "sources", description="Folder of source YAML files."
    )
    storage_dir: Path = Field(
        default=PROJECT_ROOT / ".plexus",
        description="Where items, trained models, evaluation results and predictions are written.",
    )
    download_timeout: float = Field(
        default=30.0, description="Seconds to wait for a source's URL before giving up."
    )
    evaluation_cron: str = Field(
        default="0 2 * * *",
        description="When the schedule re-evaluates every scorecard, as a cron expression.",
    )
    evaluation_timezone: str = Field(
        default="UTC", description="Time zone of evaluation_cron, e.g. Europe/Berlin."
    )
    sensor_interval: int = Field(
        default=30,
        ge=1,
        description="Seconds between two looks of the automation sensors at files and runs.",
    )

    @property
    def items_dir(self) -> Path:
        return self.storage_dir / "items"

    @property
    def models_dir(self) -> Path:
        return self.storage_dir / "models"

    @property
    def evaluations_dir(self) -> Path:
        return self.storage_dir / "evaluations"

    @property
    def predictions_dir(self) -> Path:
        return self.storage_dir / "predictions"

    @property
    def downloads_dir(self) -> Path:
        return self.storage_dir / "downloads"


@cache
def get_settings() -> PlexusSettings:
    """The settings of this process, read once from the environment."""
    return PlexusSettings()
