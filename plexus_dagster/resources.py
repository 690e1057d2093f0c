"""The resource through which assets reach the project's folders."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from plexus_dagster.scorecards.loader import (
    Scorecard,
    ScorecardCatalog,
    catalog_scorecards,
    load_scorecards,
    scorecard_files,
)
from plexus_dagster.scorecards.model_store import ModelStore
from plexus_dagster.settings import PlexusSettings
from plexus_dagster.sources.models import SourceConfig, label_fields, load_sources
from plexus_dagster.sources.normalize import read_signature


class PlexusResource(dg.ConfigurableResource):
    """Folders of data, sources, scorecards and stored artifacts."""

    data_dir: str | None = Field(default=None, description="Folder of the labelled data sets.")
    sources_dir: str = Field(description="Folder of source YAML files.")
    scorecards_dir: str = Field(description="Folder of scorecard YAML files.")
    storage_dir: str = Field(description="Where items, models and results are written.")
    download_timeout: float = Field(default=30.0, description="Seconds to wait for a URL.")

    @classmethod
    def from_settings(cls, settings: PlexusSettings) -> "PlexusResource":
        return cls(
            data_dir=str(settings.data_dir) if settings.data_dir else None,
            sources_dir=str(settings.sources_dir),
            scorecards_dir=str(settings.scorecards_dir),
            storage_dir=str(settings.storage_dir),
            download_timeout=settings.download_timeout,
        )

    @property
    def settings(self) -> PlexusSettings:
        return PlexusSettings(
            data_dir=Path(self.data_dir) if self.data_dir else None,
            sources_dir=Path(self.sources_dir),
            scorecards_dir=Path(self.scorecards_dir),
            storage_dir=Path(self.storage_dir),
            download_timeout=self.download_timeout,
        )

    def sources(self) -> dict[str, SourceConfig]:
        return load_sources(Path(self.sources_dir))

    def scorecards(self) -> dict[str, Scorecard]:
        """Every scorecard, validated; raises `ScorecardError` naming each bad file and line."""
        files = scorecard_files(Path(self.scorecards_dir))
        return load_scorecards(files, known_sources=label_fields(self.sources()))

    def catalog(self) -> ScorecardCatalog:
        """The valid scorecards, and the problems of the files that are not."""
        files = scorecard_files(Path(self.scorecards_dir))
        return catalog_scorecards(files, known_sources=label_fields(self.sources()))

    def model_store(self) -> ModelStore:
        return ModelStore(self.settings.models_dir, train_data=self.items_signature)

    def items_signature(self, source: str) -> str | None:
        """The signature of the source the stored items of ``source`` came from."""
        return read_signature(self.items_path(source))

    def items_path(self, source: str) -> Path:
        return self.settings.items_dir / f"{source}.parquet"
