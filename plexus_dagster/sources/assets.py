"""One pair of assets per declared source: the located file and its normalized items."""

from pathlib import Path

import dagster as dg
import pandas as pd

from plexus_dagster import keys
from plexus_dagster.resources import PlexusResource
from plexus_dagster.sources.loading import (
    SourceError,
    locate_source,
    read_source,
    source_signature,
)
from plexus_dagster.sources.models import SourceConfig
from plexus_dagster.sources.normalize import normalize_items, write_items
from plexus_dagster.tasks.progress import StageSpec, TaskProgress
from plexus_dagster.tasks.reporting import task_progress
from plexus_dagster.workers.requirements import data_need, op_tags, source_dataset

GROUP = "sources"


def source_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["sources", name])


def items_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["items", name])


RAW_STAGES = [StageSpec("Locate", unit="files", total=1), StageSpec("Read", unit="files", total=1)]
ITEMS_STAGES = [
    *RAW_STAGES,
    StageSpec("Normalize", unit="rows"),
    StageSpec("Store", unit="files", total=2),
]


def _locate_and_read(
    source: SourceConfig, plexus: PlexusResource, progress: TaskProgress
) -> tuple[Path, pd.DataFrame]:
    """The source's file, downloaded when needed, and its rows; a `dg.Failure` naming both."""
    try:
        with progress.stage("Locate", message=source.path or source.url or ""):
            path = locate_source(source, plexus.settings)
            progress.advance()
        with progress.stage("Read", message=str(path)):
            frame = read_source(source, path)
            progress.advance()
    except SourceError as e:
        raise dg.Failure(description=str(e), metadata={"source": source.name}) from e
    return path, frame


def build_source_assets(source: SourceConfig) -> list[dg.AssetsDefinition]:
    """The assets of one source: its raw file, then its items as Parquet."""
    # Both read the data set, so both run only where it can be reached.
    needs = op_tags([data_need(source_dataset(source))])

    @dg.asset(
        key=source_key(source.name),
        group_name=GROUP,
        description=(
            f"The raw file of source '{source.name}' ({source.format}), downloaded once when it "
            f"lives at a URL. One row is one record of the file. {source.description}"
        ).strip(),
        kinds={source.format},
        op_tags=needs,
    )
    def raw_source(
        context: dg.AssetExecutionContext, plexus: PlexusResource
    ) -> dg.MaterializeResult:
        with task_progress(context, RAW_STAGES) as progress:
            path, frame = _locate_and_read(source, plexus, progress)
            progress.complete({"path": str(path), "rows": len(frame)})
        context.log.info("Source '%s' has %d rows at %s.", source.name, len(frame), path)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "rows": len(frame),
                "columns": dg.MetadataValue.json(list(map(str, frame.columns))),
                "dagster/row_count": len(frame),
            }
        )

    @dg.asset(
        key=items_key(source.name),
        deps=[raw_source],
        group_name=GROUP,
        description=(
            f"Items of source '{source.name}'. One row is one item: item_id, text, turns "
            "(speaker and text of each turn of a conversation), metadata and labels as JSON."
        ),
        kinds={"parquet", "pandas"},
        op_tags=needs,
    )
    def items(context: dg.AssetExecutionContext, plexus: PlexusResource) -> dg.MaterializeResult:
        with task_progress(context, ITEMS_STAGES) as progress:
            path, frame = _locate_and_read(source, plexus, progress)
            with progress.stage("Normalize", total=len(frame)):
                normalized = normalize_items(source, frame)
                progress.advance(len(frame))
            with progress.stage("Store"):
                target = plexus.items_path(source.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                rejected_path = target.with_suffix(".rejected.csv")
                normalized.rejected.to_csv(rejected_path, index=False)
                progress.advance()
                signature = source_signature(source, path)
                write_items(normalized.items, target, signature=signature)
                progress.advance()
            progress.complete(
                {
                    "items": len(normalized.items),
                    "rejected": len(normalized.rejected),
                    "items_path": str(target),
                    "rejected_path": str(rejected_path),
                }
            )

        rejected = normalized.rejected
        context.log.info(
            "Source '%s' gave %d items; %d rows were skipped.",
            source.name,
            len(normalized.items),
            len(rejected),
        )
        if len(rejected):
            context.log.warning(
                "Skipped rows of source '%s' (first ones): %s",
                source.name,
                "; ".join(f"row {r.row}: {r.reason}" for r in rejected.head(5).itertuples()),
            )
        return dg.MaterializeResult(
            metadata={
                keys.ITEMS_PATH: dg.MetadataValue.path(str(target)),
                keys.ITEM_COUNT: len(normalized.items),
                keys.REJECTED_COUNT: len(rejected),
                keys.REJECTED_SAMPLE: dg.MetadataValue.md(
                    rejected.head(20).to_markdown(index=False) if len(rejected) else "none"
                ),
                "rejected_path": dg.MetadataValue.path(str(rejected_path)),
                "plexus/source_signature": signature,
                "dagster/row_count": len(normalized.items),
            }
        )

    return [raw_source, items]
