"""What the UI shows of every definition: each has a description a team member can read."""

import dagster as dg

from plexus_dagster.definitions import build_definitions
from plexus_dagster.settings import PlexusSettings


def _config_fields(asset: dg.AssetsDefinition) -> dict[str, dg.Field]:
    schema = asset.op.config_schema
    if schema is None:
        return {}
    config_type = schema.as_field().config_type
    return dict(getattr(config_type, "fields", {}))


def test_every_asset_job_sensor_and_config_field_is_described(settings: PlexusSettings) -> None:
    defs = build_definitions(settings)

    undescribed = [
        f"asset {key.to_user_string()}"
        for asset in defs.assets or []
        if isinstance(asset, dg.AssetsDefinition)
        for key, spec in asset.specs_by_key.items()
        if not spec.description
    ]
    undescribed += [
        f"config field {name} of {asset.op.name}"
        for asset in defs.assets or []
        if isinstance(asset, dg.AssetsDefinition)
        for name, field in _config_fields(asset).items()
        if not field.description
    ]
    undescribed += [f"job {job.name}" for job in defs.jobs or [] if not job.description]
    undescribed += [f"sensor {s.name}" for s in defs.sensors or [] if not s.description]
    undescribed += [
        f"field {name} of resource {key}"
        for key, resource in (defs.resources or {}).items()
        for name, field in type(resource).model_fields.items()
        if not field.description
    ]

    assert undescribed == []
    assert len(defs.assets or []) >= 8
