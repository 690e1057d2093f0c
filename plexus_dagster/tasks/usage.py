"""What a task costs the machine: CPU and memory of its process, and each GPU."""

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuUsage:
    index: int
    name: str
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int


@dataclass(frozen=True)
class ResourceUsage:
    """One sample. ``gpu_status`` says why ``gpus`` is empty when it is."""

    cpu_percent: float
    rss_bytes: int
    system_memory_percent: float
    gpus: list[GpuUsage] = field(default_factory=list)
    gpu_status: str = "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ResourceSampler:
    """Samples this process and the machine's GPUs; a missing GPU or driver is not an error."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading is always 0: start the interval now
        self._nvml: Any = None
        self.gpu_status = self._start_nvml()

    def _start_nvml(self) -> str:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as e:  # pynvml raises its own error kinds, all meaning "no GPU here"
            return f"no GPU driver ({type(e).__name__})"
        self._nvml = pynvml
        count = pynvml.nvmlDeviceGetCount()
        return "ok" if count else "no GPU"

    def _gpus(self) -> list[GpuUsage]:
        if self._nvml is None:
            return []
        nvml = self._nvml
        gpus = []
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                name = nvml.nvmlDeviceGetName(handle)
                gpus.append(
                    GpuUsage(
                        index=index,
                        name=name.decode() if isinstance(name, bytes) else str(name),
                        utilization_percent=float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                        memory_used_bytes=int(memory.used),
                        memory_total_bytes=int(memory.total),
                    )
                )
        except Exception as e:  # a GPU that stops answering must not fail the task
            logger.warning("Reading GPU usage failed: %s", e)
            self.gpu_status = f"GPU reading failed ({type(e).__name__})"
        return gpus

    def sample(self) -> ResourceUsage:
        with self._process.oneshot():
            cpu = self._process.cpu_percent(None)
            rss = self._process.memory_info().rss
        return ResourceUsage(
            cpu_percent=cpu,
            rss_bytes=rss,
            system_memory_percent=psutil.virtual_memory().percent,
            gpus=self._gpus(),
            gpu_status=self.gpu_status,
        )
