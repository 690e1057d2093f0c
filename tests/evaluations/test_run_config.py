"""Invalid evaluation config is refused before a run exists; valid config runs as given."""

import dagster as dg
import pytest

from plexus_dagster.definitions import build_definitions
from plexus_dagster.evaluations.run_config import InvalidConfig
from plexus_dagster.settings import PlexusSettings
from plexus_dagster.tasks.runs import TaskRunner


@pytest.mark.parametrize(
    ("config", "problems"),
    [
        ({"sample_size": -5}, ["sample_size = -5: Input should be greater than 0"]),
        ({"sample_size": 0}, ["sample_size = 0: Input should be greater than 0"]),
        (
            {"max_error_share": 3, "seed": -1},
            [
                "seed = -1: Input should be greater than or equal to 0",
                "max_error_share = 3.0: Input should be less than or equal to 1",
            ],
        ),
    ],
)
def test_out_of_range_config_is_refused_before_the_run_is_created(
    runner: TaskRunner,
    instance: dg.DagsterInstance,
    config: dict[str, object],
    problems: list[str],
) -> None:
    job = runner.defs.resolve_job_def("evaluation_job")

    with pytest.raises(InvalidConfig) as refused:
        job.execute_in_process(
            run_config={"ops": {"evaluation_results": {"config": config}}},
            instance=instance,
            partition_key="banking77",
        )

    message = str(refused.value)
    assert "ops.evaluation_results.config" in message
    assert "no run was started" in message
    for problem in problems:
        assert problem in message
    assert instance.get_runs() == []


def test_a_string_for_the_seed_is_refused_by_the_schema(
    runner: TaskRunner, instance: dg.DagsterInstance
) -> None:
    job = runner.defs.resolve_job_def("evaluation_job")

    with pytest.raises(dg.DagsterInvalidConfigError, match=r'Value "abc".*expected type "Int"'):
        job.execute_in_process(
            run_config={"ops": {"evaluation_results": {"config": {"seed": "abc"}}}},
            instance=instance,
            partition_key="banking77",
        )
    assert instance.get_runs() == []


def test_the_launchpad_schema_keeps_types_descriptions_and_defaults(
    settings: PlexusSettings,
) -> None:
    job = build_definitions(settings).resolve_job_def("evaluation_job")

    node = job.graph.node_named("evaluation_results")
    fields = node.definition.config_schema.as_field().config_type.fields  # type: ignore[union-attr]

    assert set(fields) == {"sample_size", "seed", "max_error_share", "report_progress"}
    assert fields["max_error_share"].default_value == 0.1
    assert fields["seed"].default_value == 0
    assert all(field.description for field in fields.values())
