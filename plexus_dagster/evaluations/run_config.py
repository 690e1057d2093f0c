"""Refusing an asset's invalid config before its run is created.

Dagster 1.13 turns a `dg.Config` class into a config schema of types alone: the `gt`, `ge` and
`le` of its pydantic fields are dropped. The Launchpad and the launch path therefore refuse a
string where a number belongs, but accept a negative sample size, which pydantic refuses only
inside the step, after the run has started. A configured op's config function runs while the
execution plan is built, before the run exists, so this wraps an asset's op in one that
validates the config class with pydantic and refuses the launch with a message per field.
"""

from typing import Any

import dagster as dg
from pydantic import ValidationError


class InvalidConfig(dg.DagsterInvalidConfigError):
    """The config breaks a constraint of the asset's config class; no run was started.

    A Dagster error, so that Dagster passes it on as it is rather than wrapped in an error about
    config mapping functions.
    """

    def __init__(self, message: str, values: dict[str, Any]) -> None:
        super().__init__(message, [], values)


def describe_problems(
    asset_name: str, config_class: type[dg.Config], error: ValidationError
) -> str:
    """One line per invalid field: its name, the value given, what is wrong, what it means."""
    fields = config_class.model_fields
    lines = []
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"])
        field = fields.get(str(problem["loc"][0])) if problem["loc"] else None
        meaning = f" ({field.description})" if field and field.description else ""
        lines.append(f"- {name} = {problem['input']!r}: {problem['msg']}.{meaning}")
    return (
        f"The config of '{asset_name}' (ops.{asset_name}.config) is invalid and no run was "
        "started. Fix:\n" + "\n".join(lines)
    )


def check_config(
    asset_name: str, config_class: type[dg.Config], values: dict[str, Any]
) -> dict[str, Any]:
    """``values`` when ``config_class`` accepts them; raises `InvalidConfig` otherwise."""
    try:
        config_class(**values)
    except ValidationError as e:
        raise InvalidConfig(describe_problems(asset_name, config_class, e), values) from None
    return values


def refuse_invalid_config(
    asset: dg.AssetsDefinition, config_class: type[dg.Config]
) -> dg.AssetsDefinition:
    """The single-output ``asset`` with its op's config checked by ``config_class`` at launch."""
    key = asset.key
    op = asset.op
    checked = op.configured(
        lambda values: check_config(op.name, config_class, values),
        name=op.name,
        config_schema=config_class.to_fields_dict(),
    )
    spec = asset.specs_by_key[key]
    (output_name,) = asset.keys_by_output_name
    return dg.AssetsDefinition.from_op(
        checked,
        keys_by_input_name=asset.keys_by_input_name,
        keys_by_output_name=asset.keys_by_output_name,
        partitions_def=asset.partitions_def,
        group_name=spec.group_name,
        descriptions_by_output_name={output_name: spec.description or ""},
        metadata_by_output_name={output_name: spec.metadata},
        tags_by_output_name={output_name: spec.tags},
    )
