"""Live progress of a task: its stages, items done, rate, ETA, resource usage and errors.

The counting side (`TaskProgress.advance`) does no I/O, so it can sit in the innermost loop of
a job. Writes go through a `ProgressSink`, always from a background thread: at most one a second
while anything changed, and one at once on each stage change, on completion and on failure (the
snapshot is taken at that moment and handed to the thread, so the job never waits on a write). Every
write carries the whole state of the step (a few hundred bytes), so a reader needs only the
latest write of each step and can never fall out of step by missing one.
"""

import logging
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from plexus_dagster.tasks.usage import ResourceSampler, ResourceUsage

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELED = "canceled"


@dataclass(frozen=True)
class StageSpec:
    """A stage a job declares up front. ``unit`` names what its counts count."""

    name: str
    unit: str = "items"
    total: int | None = None


class RateWindow:
    """Items per second over the last ``seconds``: a slowdown shows within the window."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, processed: int) -> None:
        self._samples.append((now, processed))
        # Keep one sample older than the window, so the rate spans the whole window.
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.seconds:
            self._samples.popleft()

    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (first_time, first_count), (last_time, last_count) = self._samples[0], self._samples[-1]
        if last_time <= first_time:
            return None
        return (last_count - first_count) / (last_time - first_time)


@dataclass
class StageState:
    spec: StageSpec
    order: int
    total: int | None
    window: RateWindow
    processed: int = 0
    status: str = PENDING
    message: str = ""
    started: float | None = None
    finished: float | None = None

    def items_per_second(self, now: float) -> float | None:
        if self.status == DONE and self.started is not None and self.finished is not None:
            elapsed = self.finished - self.started
            return self.processed / elapsed if elapsed > 0 else None
        return self.window.rate()

    def eta_seconds(self, now: float) -> float | None:
        if self.status == DONE:
            return 0.0
        rate = self.items_per_second(now)
        if self.total is None or not rate:
            return None
        return max(self.total - self.processed, 0) / rate

    def percent(self) -> float | None:
        if self.status == DONE:
            return 100.0
        if not self.total:
            return None
        return min(100.0, 100.0 * self.processed / self.total)

    def to_dict(self, now: float) -> dict[str, Any]:
        rate = self.items_per_second(now)
        eta = self.eta_seconds(now)
        percent = self.percent()
        return {
            "name": self.spec.name,
            "order": self.order,
            "unit": self.spec.unit,
            "status": self.status,
            "processed": self.processed,
            "total": self.total,
            "percent": None if percent is None else round(percent, 1),
            "items_per_second": None if rate is None else round(rate, 2),
            "eta_seconds": None if eta is None else round(eta, 1),
            "message": self.message,
        }


class ProgressSink(Protocol):
    """Where progress goes; the Dagster sink writes the event log and the run's tags."""

    def write(self, payload: dict[str, Any]) -> None: ...

    def tick(self) -> None:
        """Called by the writer thread about once a second, e.g. to look for a cancel request."""
        ...


@dataclass
class ErrorReport:
    stage: str | None
    processed: int
    item_id: str | None
    message: str
    exception_chain: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "processed": self.processed,
            "item_id": self.item_id,
            "message": self.message,
            "exception_chain": self.exception_chain,
        }


def exception_chain(error: BaseException) -> list[str]:
    """Each exception of the chain, outermost first, as ``Type: message``."""
    chain: list[str] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append("".join(traceback.format_exception_only(current)).strip())
        current = current.__cause__ or current.__context__
    return chain


class TaskProgress:
    """The progress of one step of a task, written through ``sink``.

    Args:
        sink: where writes go.
        stages: the stages the step will go through, in order.
        step: the step's name, for tasks of several steps.
        interval: least seconds between two throttled writes.
        heartbeat: seconds after which a write goes out even when nothing was counted, so that
            a long stage still shows its resource usage and a falling rate.
        window: seconds over which items per second are measured.
        clock: monotonic seconds; tests pass a controlled one.
        sampler: resource usage sampler; None leaves usage out.
    """

    def __init__(
        self,
        sink: ProgressSink,
        stages: Sequence[StageSpec],
        *,
        step: str = "",
        interval: float = 1.0,
        heartbeat: float = 5.0,
        window: float = 10.0,
        clock: Clock = time.monotonic,
        sampler: ResourceSampler | None = None,
    ) -> None:
        self.sink = sink
        self.step = step
        self.interval = interval
        self.heartbeat = heartbeat
        self.clock = clock
        self.sampler = sampler
        self.stages = {
            spec.name: StageState(spec, order, spec.total, RateWindow(window))
            for order, spec in enumerate(stages)
        }
        self.current: StageState | None = None
        self.item_id: str | None = None
        self.error: ErrorReport | None = None
        self.results: dict[str, Any] | None = None
        self.usage: ResourceUsage | None = None
        self.writes = 0
        self._lock = threading.Lock()
        self._last_write = float("-inf")
        self._written_state: tuple[Any, ...] = ()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pending: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    # Counting: no I/O here.

    def advance(self, count: int = 1, *, item_id: str | None = None) -> None:
        stage = self.current
        if stage is None:
            raise RuntimeError("advance() called outside a stage")
        stage.processed += count
        if item_id is not None:
            self.item_id = item_id

    def set_total(self, total: int) -> None:
        if self.current is None:
            raise RuntimeError("set_total() called outside a stage")
        self.current.total = total

    def set_message(self, message: str) -> None:
        if self.current is not None:
            self.current.message = message

    # Stage changes, completion and failure: written at once.

    def start_stage(self, name: str, *, total: int | None = None, message: str = "") -> None:
        if self.current is not None and self.current.status == RUNNING:
            self.finish_stage()
        stage = self.stages[name]
        now = self.clock()
        stage.status = RUNNING
        stage.started = now
        stage.message = message
        if total is not None:
            stage.total = total
        stage.window.add(now, 0)
        self.current = stage
        self.item_id = None
        self._write("stage_started")

    def finish_stage(self, *, message: str | None = None) -> None:
        stage = self.current
        if stage is None:
            return
        stage.status = DONE
        stage.finished = self.clock()
        if message is not None:
            stage.message = message
        if stage.total is None:
            stage.total = stage.processed
        self._write("stage_finished")

    @contextmanager
    def stage(self, name: str, *, total: int | None = None, message: str = "") -> Iterator[None]:
        """Runs a block as a stage; an exception escaping it is reported as the task's failure."""
        self.start_stage(name, total=total, message=message)
        try:
            yield
        except Exception as e:
            self.fail(e)
            raise
        except BaseException:  # an interrupt: the task was canceled, or the process is ending
            self.cancel()
            raise
        self.finish_stage()

    def fail(self, error: BaseException, *, message: str | None = None) -> None:
        if self.error is not None:
            return  # the innermost report is the most precise
        stage = self.current
        if stage is not None:
            stage.status = FAILED
            stage.finished = self.clock()
        self.error = ErrorReport(
            stage=stage.spec.name if stage else None,
            processed=stage.processed if stage else 0,
            item_id=self.item_id,
            message=message or str(error) or type(error).__name__,
            exception_chain=exception_chain(error),
        )
        self._write("failed")

    def cancel(self) -> None:
        stage = self.current
        if stage is not None and stage.status == RUNNING:
            stage.status = CANCELED
            stage.finished = self.clock()
        self._write("canceled")

    def complete(self, results: dict[str, Any]) -> None:
        if self.current is not None and self.current.status == RUNNING:
            self.finish_stage()
        self.results = results
        self._write("completed")

    # Writing

    def snapshot(self, kind: str) -> dict[str, Any]:
        now = self.clock()
        stages = sorted(self.stages.values(), key=lambda s: s.order)
        return {
            "kind": kind,
            "step": self.step,
            "stages": [stage.to_dict(now) for stage in stages],
            "current_stage": self.current.spec.name if self.current else None,
            "item_id": self.item_id,
            "task_eta_seconds": self._task_eta(now),
            "resources": self.usage.to_dict() if self.usage else None,
            "error": self.error.to_dict() if self.error else None,
            "results": self.results,
        }

    def _task_eta(self, now: float) -> float | None:
        """The current stage's ETA, plus later item stages at the current stage's rate."""
        current = self.current
        if current is None:
            return None
        eta = current.eta_seconds(now)
        if eta is None:
            return None
        rate = current.items_per_second(now)
        for stage in self.stages.values():
            if stage.order <= current.order or stage.status != PENDING:
                continue
            if stage.spec.unit == current.spec.unit and stage.total and rate:
                eta += stage.total / rate
        return eta

    def _state(self) -> tuple[Any, ...]:
        stage = self.current
        if stage is None:
            return ()
        return (stage.spec.name, stage.processed, stage.total, stage.message, stage.status)

    def _write(self, kind: str) -> None:
        """Takes a snapshot now; the background writer sends it, so the caller never waits."""
        with self._lock:
            now = self.clock()
            for stage in self.stages.values():
                if stage.status == RUNNING:
                    stage.window.add(now, stage.processed)
            payload = self.snapshot(kind)
            self.writes += 1
            self._last_write = now
            self._written_state = self._state()
        if self._thread is not None and self._thread.is_alive():
            self._pending.put(payload)
            self._wake.set()
        else:
            self._send(payload)

    def _send(self, payload: dict[str, Any]) -> None:
        try:
            self.sink.write(payload)
        except Exception:  # progress must never fail the task it reports on
            logger.warning("Writing the progress of step '%s' failed.", self.step, exc_info=True)

    def _drain(self) -> None:
        while True:
            try:
                payload = self._pending.get_nowait()
            except queue.Empty:
                return
            self._send(payload)

    def flush_if_due(self) -> bool:
        """Writes the progress if a second has passed since the last write and it changed."""
        if self.clock() - self._last_write < self.interval:
            return False
        if self.sampler is not None:
            self.usage = self.sampler.sample()
        quiet = self.clock() - self._last_write < self.heartbeat
        if self._state() == self._written_state and quiet:
            if self.current is not None:
                self.current.window.add(self.clock(), self.current.processed)
            return False
        self._write("progress")
        return True

    # The background writer

    def start(self) -> "TaskProgress":
        if self.sampler is not None:
            self.usage = self.sampler.sample()
        self._thread = threading.Thread(target=self._run, name="plexus-progress", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        next_tick = self.clock()
        while not self._stop.is_set():
            self._wake.wait(self.interval / 4)
            self._wake.clear()
            self._drain()
            self.flush_if_due()
            self._drain()
            if self.clock() >= next_tick:
                next_tick = self.clock() + self.interval
                try:
                    self.sink.tick()
                except Exception:  # as with writes: never fatal to the task
                    logger.warning("The progress tick of '%s' failed.", self.step, exc_info=True)

    def stop(self) -> None:
        """Stops the writer once every snapshot taken so far has been written."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._drain()

    def __enter__(self) -> "TaskProgress":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
