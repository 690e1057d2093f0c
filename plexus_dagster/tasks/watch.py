"""Drawing a task's progress in a terminal until it ends."""

import time
from typing import Any

import dagster as dg
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.text import Text

from plexus_dagster import keys
from plexus_dagster.tasks.reading import TaskReader, TaskView


def _size(count: float | None) -> str:
    if count is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024:
            return f"{count:.0f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"ETA {seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"ETA {minutes} min {rest:02d} s"


def resources_line(resources: dict[str, Any]) -> str:
    if resources.get("cpu_percent") is None:
        return "resources: not sampled yet"
    gpus = resources.get("gpus") or []
    if gpus:
        gpu = ", ".join(
            f"GPU{g['index']} {g['utilization_percent']:.0f}% "
            f"{_size(g['memory_used_bytes'])}/{_size(g['memory_total_bytes'])}"
            for g in gpus
        )
    else:
        gpu = f"GPU: {resources.get('gpu_status', 'none')}"
    return (
        f"CPU {resources['cpu_percent']:.0f}%  RSS {_size(resources['rss_bytes'])}  "
        f"system memory {resources['system_memory_percent']:.0f}%  {gpu}"
    )


class ProgressBars:
    """One bar per stage, updated from a `TaskView`."""

    def __init__(self, width: int = 160) -> None:
        narrow = width < 120
        name_width = 14 if narrow else 28
        self.progress = Progress(
            TextColumn("{task.description:<" + str(name_width) + "}"),
            BarColumn(bar_width=10 if narrow else 30),
            TextColumn("{task.fields[counts]:>13}"),
            TextColumn("{task.fields[rate]:>12}"),
            TextColumn("{task.fields[eta]:>11}"),
            TextColumn("{task.fields[message]}"),
            auto_refresh=False,
        )
        self.bars: dict[str, TaskID] = {}
        self.footer = Text()

    def update(self, view: TaskView) -> Group:
        for stage in view.stages():
            total = stage["total"]
            processed = stage["processed"]
            rate = stage["items_per_second"]
            running = stage["status"] == "running"
            fields: dict[str, Any] = {
                "counts": f"{processed:,}/{total:,}" if total is not None else f"{processed:,}",
                "rate": f"{rate:,.0f} {stage['unit']}/s"
                if rate and stage["unit"] == "items"
                else "",
                "eta": _eta(stage["eta_seconds"]) if running else "",
                "message": (stage["message"] or "") if running else stage["status"],
            }
            if stage["name"] not in self.bars:
                self.bars[stage["name"]] = self.progress.add_task(
                    stage["name"], total=total, completed=processed, **fields
                )
            else:
                self.progress.update(
                    self.bars[stage["name"]], total=total, completed=processed, **fields
                )
        status = f"task {view.id} ({view.run.job_name}): {view.status.value}"
        waiting = view.run.tags.get(keys.WAITING_TAG)
        if waiting and view.status == dg.DagsterRunStatus.QUEUED:
            status += f", {waiting}"
        task_eta = view.eta_seconds()
        if task_eta is not None:
            status += f", {_eta(task_eta)} for the task"
        self.footer = Text(f"{status}\n{resources_line(view.resources())}")
        return Group(self.progress, self.footer)


def _stage_line(stage: dict[str, Any]) -> str:
    total = f"/{stage['total']:,}" if stage["total"] is not None else ""
    rate = stage["items_per_second"]
    speed = f" at {rate:,.0f} {stage['unit']}/s" if rate and stage["unit"] == "items" else ""
    return (
        f"{stage['name']}: {stage['status']}, {stage['processed']:,}{total} {stage['unit']}{speed}"
    )


def _follow_lines(
    reader: TaskReader, console: Console, poll: float, *, every: float = 10.0
) -> TaskView:
    """For a console that is not a terminal, such as a log file: a line when a stage starts or
    ends, and every ``every`` seconds while a stage moves."""
    seen: dict[str, tuple[str, int]] = {}
    last_line = time.monotonic()
    view = reader.poll()
    said_waiting = ""
    while True:
        waiting = view.run.tags.get(keys.WAITING_TAG, "")
        if view.status == dg.DagsterRunStatus.QUEUED and waiting and waiting != said_waiting:
            console.print(f"Queued, {waiting}.", markup=False, highlight=False)
            said_waiting = waiting
        due = time.monotonic() - last_line >= every
        for stage in view.stages():
            before = seen.get(stage["name"])
            changed = before is None or before[0] != stage["status"]
            moved = before is not None and before[1] != stage["processed"]
            if stage["status"] != "pending" and (changed or (due and moved)):
                seen[stage["name"]] = (stage["status"], stage["processed"])
                line = _stage_line(stage)
                if stage["status"] == "running" and stage["eta_seconds"] is not None:
                    line += f", {_eta(stage['eta_seconds'])}"
                console.print(line, markup=False, highlight=False)
                last_line = time.monotonic()
        if view.finished:
            return view
        time.sleep(poll)
        view = reader.poll()


def watch(reader: TaskReader, console: Console, *, poll: float = 0.5) -> TaskView:
    """Draws the task's stages until it ends; returns its final view.

    On a terminal, a live bar per stage; elsewhere (a pipe, a CI log), a line per stage change.
    """
    if console.is_terminal:
        bars = ProgressBars(console.width)
        view = reader.poll()
        with Live(bars.update(view), console=console, refresh_per_second=4) as live:
            while not view.finished:
                time.sleep(poll)
                view = reader.poll()
                live.update(bars.update(view), refresh=True)
    else:
        view = _follow_lines(reader, console, poll)
        console.print(resources_line(view.resources()), markup=False, highlight=False)
    error = view.error()
    if error:
        item = f", item {error['item_id']!r}" if error.get("item_id") else ""
        console.print(
            f"Failed in stage {error.get('stage')!r} after {error.get('processed')} "
            f"counted{item}: {error['message']}",
            style="red",
            markup=False,
            highlight=False,
        )
    return view
