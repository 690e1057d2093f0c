"""Kubernetes placement of runs and steps from what they need.

A run or an op declares needs as strings: ``gpu``, ``data:<dataset>`` or any capability a
deployment names. The capability file (``PLEXUS_K8S_CONFIG``, see
``deploy/k8s-capabilities.yaml``) maps each need to a GPU limit, node selectors and tolerations;
`k8s_tags` turns needs into the ``dagster-k8s/config`` tag, which `K8sRunLauncher` applies to
run pods when it is a job's or run's tag and `k8s_job_executor` applies to step pods when it is
an op's tag.
"""

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from plexus_dagster.config_errors import validation_errors
from plexus_dagster.yaml_lines import LineDict, YamlFileError, load_yaml

CONFIG_ENV = "PLEXUS_K8S_CONFIG"
GPU = "gpu"
# The tag both K8sRunLauncher (run and job tags) and k8s_job_executor (op tags) read.
K8S_CONFIG_TAG = "dagster-k8s/config"


class K8sConfigError(ValueError):
    """A capability file that cannot be used, or a need it does not map."""


class Toleration(BaseModel):
    """A Kubernetes toleration, letting pods onto nodes with a matching taint."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    def as_k8s(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Placement(BaseModel):
    """Where pods that need a capability may run."""

    model_config = ConfigDict(extra="forbid")

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)


class GpuPlacement(Placement):
    """The GPUs a pod that needs ``gpu`` asks for, and where such pods may run."""

    resource: str = Field(default="nvidia.com/gpu", description="The extended resource name.")
    count: int = Field(default=1, ge=1, description="GPUs per pod.")


class K8sCapabilities(BaseModel):
    """The capability file: the GPU settings and each named capability's placement."""

    model_config = ConfigDict(extra="forbid")

    gpu: GpuPlacement = Field(default_factory=GpuPlacement)
    capabilities: dict[str, Placement] = Field(default_factory=dict)
    _source: str = PrivateAttr(default=f"the defaults ({CONFIG_ENV} is not set)")

    @property
    def source(self) -> str:
        """The file it was read from, for messages."""
        return self._source


def load_k8s_capabilities(path: Path | None = None) -> K8sCapabilities:
    """The capability file at ``path``, else at ``$PLEXUS_K8S_CONFIG``; defaults without one."""
    if path is None:
        configured = os.environ.get(CONFIG_ENV)
        if not configured:
            return K8sCapabilities()
        path = Path(configured)
    try:
        document = load_yaml(path)
    except YamlFileError as e:
        raise K8sConfigError(str(e)) from e
    if document is None:
        document = LineDict()
    if not isinstance(document, LineDict):
        raise K8sConfigError(f"{path}:1: expected a mapping with 'gpu' and 'capabilities'")
    try:
        config = K8sCapabilities.model_validate(document)
    except pydantic.ValidationError as e:
        problems = validation_errors(path, document, e)
        raise K8sConfigError("\n".join(str(problem) for problem in problems)) from e
    config._source = str(path)
    return config


def k8s_config_for_needs(needs: Iterable[str], config: K8sCapabilities) -> dict[str, Any]:
    """The value of the ``dagster-k8s/config`` tag for pods with ``needs``; empty for none."""
    placements: list[tuple[str, Placement]] = []
    container: dict[str, Any] = {}
    unknown = []
    for need in sorted(set(needs)):
        if need == GPU:
            placements.append((need, config.gpu))
            container = {"resources": {"limits": {config.gpu.resource: str(config.gpu.count)}}}
        elif need in config.capabilities:
            placements.append((need, config.capabilities[need]))
        else:
            unknown.append(need)
    if unknown:
        known = ", ".join([GPU, *sorted(config.capabilities)])
        noun = "capability" if len(unknown) == 1 else "capabilities"
        raise K8sConfigError(
            f"No placement for the {noun} {', '.join(map(repr, unknown))} in {config.source}"
            f" (it maps: {known}). Add it under 'capabilities' there, or set {CONFIG_ENV} to a "
            "file that maps it; deploy/k8s-capabilities.yaml is an example."
        )

    selector: dict[str, str] = {}
    chosen_by: dict[str, str] = {}
    tolerations: list[dict[str, str]] = []
    for need, placement in placements:
        for label, wanted in placement.node_selector.items():
            if selector.get(label, wanted) != wanted:
                raise K8sConfigError(
                    f"Capabilities '{chosen_by[label]}' and '{need}' of {config.source} select "
                    f"nodes with {label}={selector[label]} and {label}={wanted}; no node has "
                    "both. Give one of them another label."
                )
            selector[label] = wanted
            chosen_by[label] = need
        for toleration in placement.tolerations:
            if toleration.as_k8s() not in tolerations:
                tolerations.append(toleration.as_k8s())

    pod: dict[str, Any] = {}
    if selector:
        pod["node_selector"] = selector
    if tolerations:
        pod["tolerations"] = tolerations
    value: dict[str, Any] = {}
    if container:
        value["container_config"] = container
    if pod:
        value["pod_spec_config"] = pod
    return value


def k8s_tags(needs: Iterable[str], config: K8sCapabilities | None = None) -> dict[str, str]:
    """Run, job or op tags that place a pod where ``needs`` are met; no tag when none are.

    ``config`` defaults to the capability file named by ``$PLEXUS_K8S_CONFIG``.
    """
    value = k8s_config_for_needs(needs, config or load_k8s_capabilities())
    return {K8S_CONFIG_TAG: json.dumps(value, sort_keys=True)} if value else {}
