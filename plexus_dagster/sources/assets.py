"""One pair of assets per declared source: the located file and its normalized items."""

import dagster as dg

from plexus_dagster import keys
from plexus_dagster.resources import PlexusResource
from plexus_dagster.sources.loading import SourceError, locate_source, read_source
from plexus_dagster.sources.models import SourceConfig
from plexus_dagster.sources.normalize import normalize_items, write_items

GROUP = "sources"


def source_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["sources", name])


def items_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["items", name])


def build_source_assets(source: SourceConfig) -> list[dg.AssetsDefinition]:
    """The assets of one source: its raw file, then its items as Parquet."""

    @dg.asset(
        key=source_key(source.name),
        group_name=GROUP,
        description=(
            f"The raw file of source '{source.name}' ({source.format}), downloaded once when it "
            f"lives at a URL. One row is one record of the file. {source.description}"
        ).strip(),
        kinds={source.format},
    )
    def raw_source(
        context: dg.AssetExecutionContext, plexus: PlexusResource
    ) -> dg.MaterializeResult:
        try:
            path = locate_source(source, plexus.settings)
            frame = read_source(source, path)
        except SourceError as e:
            raise dg.Failure(description=str(e), metadata={"source": source.name}) from e

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
    )
    def items(context: dg.AssetExecutionContext, plexus: PlexusResource) -> dg.MaterializeResult:
        try:
            frame = read_source(source, locate_source(source, plexus.settings))
        except SourceError as e:
            raise dg.Failure(description=str(e), metadata={"source": source.name}) from e
        normalized = normalize_items(source, frame)

        target = plexus.items_path(source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_items(normalized.items, str(target))
        rejected_path = target.with_suffix(".rejected.csv")
        normalized.rejected.to_csv(rejected_path, index=False)

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
                "dagster/row_count": len(normalized.items),
            }
        )

    return [raw_source, items]
