"""The pods dagster-k8s would submit for runs and steps tagged by their needs.

There is no cluster here: the Job specs come from dagster-k8s's own code, the same calls its
K8sRunLauncher (run pods, run tags) and k8s_job_executor (step pods, op tags) make.
"""

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.execution.api import create_execution_plan  # the step tags the executor reads
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

from plexus_dagster.settings import PROJECT_ROOT
from plexus_dagster.workers.k8s import (
    CONFIG_ENV,
    K8S_CONFIG_TAG,
    K8sCapabilities,
    K8sConfigError,
    k8s_tags,
    load_k8s_capabilities,
)

EXAMPLE = PROJECT_ROOT / "deploy" / "k8s-capabilities.yaml"
JOB_CONFIG = DagsterK8sJobConfig(job_image="plexus-dagster:test", dagster_home="/opt/dagster")


@pytest.fixture
def capabilities() -> K8sCapabilities:
    return load_k8s_capabilities(EXAMPLE)


def tagged_job(run_tags: dict[str, str], op_tags: dict[str, str]) -> dg.JobDefinition:
    @dg.op(tags=op_tags)
    def embed_texts() -> None:
        pass

    @dg.op
    def count_texts() -> None:
        pass

    @dg.job(tags=run_tags)
    def scoring_job() -> None:
        embed_texts()
        count_texts()

    return scoring_job


def run_pod(run: dg.DagsterRun) -> Any:
    """The pod spec of the Job K8sRunLauncher submits for ``run``."""
    context = K8sContainerContext.create_for_run(run, None, include_run_tags=True)
    job = construct_dagster_k8s_job(
        JOB_CONFIG,
        ["dagster", "api", "execute_run"],
        f"dagster-run-{run.run_id}",
        user_defined_k8s_config=context.run_k8s_config,
        component="run_worker",
    )
    return job.spec.template.spec


def step_pod(run: dg.DagsterRun, step_tags: dict[str, str]) -> Any:
    """The pod spec of the Job k8s_job_executor submits for a step with ``step_tags``."""
    context = K8sContainerContext.create_for_run(run, None, include_run_tags=False)
    context = context.merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(step_tags))
    )
    job = construct_dagster_k8s_job(
        JOB_CONFIG,
        ["dagster", "api", "execute_step"],
        "dagster-step-embed-texts",
        user_defined_k8s_config=context.run_k8s_config,
        component="step_worker",
    )
    return job.spec.template.spec


def tolerations(spec: Any) -> list[tuple[str, str, str | None, str]]:
    return [(t.key, t.operator, t.value, t.effect) for t in spec.tolerations or []]


def test_a_gpu_run_pod_asks_for_a_gpu_on_gpu_and_data_nodes(
    capabilities: K8sCapabilities, instance: dg.DagsterInstance
) -> None:
    job = tagged_job(k8s_tags({"gpu", "data:banking77"}, capabilities), {})
    # Launchers (the UI, sensors, execute_in_process) start a run with its job's run tags.
    run = instance.create_run_for_job(job, tags=dict(job.run_tags))

    spec = run_pod(run)

    assert spec.containers[0].resources.limits == {"nvidia.com/gpu": "1"}
    assert spec.containers[0].image == "plexus-dagster:test"
    assert spec.node_selector == {
        "plexus.dev/accelerator": "gpu",
        "plexus.dev/data-banking77": "true",
    }
    assert tolerations(spec) == [("nvidia.com/gpu", "Exists", None, "NoSchedule")]


def test_only_the_step_of_the_tagged_op_gets_the_gpu(
    capabilities: K8sCapabilities, instance: dg.DagsterInstance
) -> None:
    job = tagged_job({}, k8s_tags({"gpu", "long-running"}, capabilities))
    run = instance.create_run_for_job(job)
    plan = create_execution_plan(job)

    gpu_step = step_pod(run, dict(plan.get_step_by_key("embed_texts").tags or {}))
    plain_step = step_pod(run, dict(plan.get_step_by_key("count_texts").tags or {}))

    assert gpu_step.containers[0].resources.limits == {"nvidia.com/gpu": "1"}
    assert gpu_step.node_selector == {"plexus.dev/accelerator": "gpu", "plexus.dev/pool": "batch"}
    assert tolerations(gpu_step) == [
        ("nvidia.com/gpu", "Exists", None, "NoSchedule"),
        ("plexus.dev/batch", "Equal", "true", "NoSchedule"),
    ]
    assert plain_step.containers[0].resources.limits is None
    assert plain_step.node_selector is None
    assert plain_step.tolerations is None


def test_tags_given_to_a_run_place_its_run_pod_and_not_its_step_pods(
    capabilities: K8sCapabilities, instance: dg.DagsterInstance
) -> None:
    job = tagged_job({}, {})
    run = instance.create_run_for_job(job, tags=k8s_tags({"data:twacs"}, capabilities))
    plan = create_execution_plan(job)

    assert run_pod(run).node_selector == {"plexus.dev/data-twacs": "true"}
    assert step_pod(run, dict(plan.get_step_by_key("count_texts").tags or {})).node_selector is None


def test_the_gpu_resource_and_count_come_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "caps.yaml"
    path.write_text("gpu:\n  resource: amd.com/gpu\n  count: 2\n")

    tags = k8s_tags(["gpu"], load_k8s_capabilities(path))

    assert tags == {
        K8S_CONFIG_TAG: '{"container_config": {"resources": {"limits": {"amd.com/gpu": "2"}}}}'
    }


def test_no_needs_no_tag(capabilities: K8sCapabilities) -> None:
    assert k8s_tags([], capabilities) == {}


def test_an_unknown_capability_names_itself_and_the_file(capabilities: K8sCapabilities) -> None:
    with pytest.raises(K8sConfigError) as raised:
        k8s_tags({"gpu", "data:imdb"}, capabilities)

    assert "'data:imdb'" in str(raised.value)
    assert str(EXAMPLE) in str(raised.value)


def test_the_file_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "caps.yaml"
    path.write_text("capabilities:\n  fast-disk:\n    node_selector: {disk: ssd}\n")
    monkeypatch.setenv(CONFIG_ENV, str(path))

    assert k8s_tags({"fast-disk"}) == {
        K8S_CONFIG_TAG: '{"pod_spec_config": {"node_selector": {"disk": "ssd"}}}'
    }
    with pytest.raises(K8sConfigError, match=r"'data:banking77' in .*caps\.yaml"):
        k8s_tags({"data:banking77"})


def test_a_bad_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "caps.yaml"
    path.write_text("gpu:\n  count: 1\ncapabilities:\n  fast:\n    node_selectors: {a: b}\n")

    with pytest.raises(K8sConfigError, match=rf"{path}:5: unknown field .*node_selectors"):
        load_k8s_capabilities(path)


def test_conflicting_node_selectors_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "caps.yaml"
    path.write_text(
        "capabilities:\n  a: {node_selector: {pool: one}}\n  b: {node_selector: {pool: two}}\n"
    )

    with pytest.raises(K8sConfigError, match="pool=one and pool=two"):
        k8s_tags({"a", "b"}, load_k8s_capabilities(path))
