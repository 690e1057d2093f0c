"""Rate, ETA, throttling and failure reports of TaskProgress, on a controlled clock."""

import time
from typing import Any

import pytest

from plexus_dagster.keys import ETA_TAG, STAGE_TAG
from plexus_dagster.tasks.progress import RateWindow, StageSpec, TaskProgress
from plexus_dagster.tasks.reporting import progress_tags


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


class ListSink:
    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def write(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)

    def kinds(self) -> list[str]:
        return [p["kind"] for p in self.payloads]

    def tick(self) -> None:
        pass


STAGES = [StageSpec("Load", unit="steps", total=1), StageSpec("Score"), StageSpec("Store")]


def stage(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in payload["stages"] if s["name"] == name)


def test_rate_is_measured_over_the_recent_window_not_since_the_start() -> None:
    window = RateWindow(seconds=10)
    for second in range(21):  # 100 items/s for 10 s, then 10 items/s for 10 s
        processed = 100 * min(second, 10) + 10 * max(second - 10, 0)
        window.add(float(second), processed)

    assert window.rate() == pytest.approx(10.0)


def test_percent_rate_and_eta_of_a_counted_stage() -> None:
    clock, sink = Clock(), ListSink()
    progress = TaskProgress(sink, STAGES, clock=clock)

    progress.start_stage("Score", total=1000)
    for _ in range(4):
        clock.tick(1.0)
        progress.advance(50)
        assert progress.flush_if_due()

    latest = stage(sink.payloads[-1], "Score")
    assert latest["processed"] == 200
    assert latest["percent"] == 20.0
    assert latest["items_per_second"] == pytest.approx(50.0)
    assert latest["eta_seconds"] == pytest.approx(800 / 50)
    # The later item stage has no total yet, so the task's ETA is the stage's.
    assert sink.payloads[-1]["task_eta_seconds"] == pytest.approx(16.0)


def test_task_eta_adds_later_stages_of_the_same_unit_at_the_current_rate() -> None:
    clock, sink = Clock(), ListSink()
    stages = [StageSpec("Score", total=100), StageSpec("Store", total=50)]
    progress = TaskProgress(sink, stages, clock=clock)

    progress.start_stage("Score")
    clock.tick(2.0)
    progress.advance(20)
    progress.flush_if_due()

    assert sink.payloads[-1]["task_eta_seconds"] == pytest.approx(80 / 10 + 50 / 10)


def test_the_first_estimate_comes_after_one_second_of_counting() -> None:
    clock, sink = Clock(), ListSink()
    progress = TaskProgress(sink, STAGES, clock=clock)

    progress.start_stage("Score", total=3080)
    clock.tick(1.0)
    progress.advance(300)
    progress.flush_if_due()

    assert stage(sink.payloads[-1], "Score")["eta_seconds"] == pytest.approx(2780 / 300, abs=0.05)


def test_a_burst_of_updates_writes_at_most_one_snapshot_a_second() -> None:
    clock, sink = Clock(), ListSink()
    progress = TaskProgress(sink, STAGES, clock=clock)

    progress.start_stage("Score", total=100_000)
    for _ in range(100_000):  # 100,000 items in 10 s, the writer looking after every item
        clock.tick(0.0001)
        progress.advance()
        progress.flush_if_due()
    progress.complete({"items": 100_000})

    assert sink.kinds().count("progress") <= 10
    assert sink.kinds()[0] == "stage_started"
    assert sink.kinds()[-2:] == ["stage_finished", "completed"]
    assert stage(sink.payloads[-1], "Score")["processed"] == 100_000


def test_stage_changes_are_written_at_once_and_nothing_when_nothing_changed() -> None:
    clock, sink = Clock(), ListSink()
    progress = TaskProgress(sink, STAGES, clock=clock, heartbeat=60)

    with progress.stage("Load"):
        progress.advance()
    clock.tick(5)
    assert not progress.flush_if_due()
    with progress.stage("Score", total=10):
        progress.advance(10)

    assert sink.kinds() == ["stage_started", "stage_finished", "stage_started", "stage_finished"]
    assert [s["status"] for s in sink.payloads[-1]["stages"]] == ["done", "done", "pending"]


def test_a_failure_in_the_middle_of_a_stage_reports_the_stage_count_and_item() -> None:
    clock, sink = Clock(), ListSink()
    progress = TaskProgress(sink, STAGES, clock=clock)

    def score_until_item_41_fails() -> None:
        with progress.stage("Score", total=100):
            for number in range(100):
                progress.advance(item_id=f"item-{number}")
                if number == 41:
                    try:
                        raise KeyError("missing field")
                    except KeyError as cause:
                        raise ValueError("bad item") from cause

    with pytest.raises(ValueError, match="bad item"):
        score_until_item_41_fails()

    failure = sink.payloads[-1]
    assert failure["kind"] == "failed"
    assert failure["error"]["stage"] == "Score"
    assert failure["error"]["processed"] == 42
    assert failure["error"]["item_id"] == "item-41"
    assert failure["error"]["message"] == "bad item"
    assert failure["error"]["exception_chain"] == [
        "ValueError: bad item",
        "KeyError: 'missing field'",
    ]
    assert stage(failure, "Score")["status"] == "failed"


def test_the_background_writer_writes_while_the_caller_only_counts() -> None:
    sink = ListSink()
    progress = TaskProgress(sink, STAGES, interval=0.05)

    with progress:
        progress.start_stage("Score", total=1000)
        for _ in range(10):
            progress.advance(100)
            time.sleep(0.03)
        progress.finish_stage()

    assert "progress" in sink.kinds()
    assert stage(sink.payloads[-1], "Score")["processed"] == 1000


def test_an_interrupt_marks_the_stage_canceled_not_failed() -> None:
    clock, sink = Clock(), ListSink()
    progress = TaskProgress(sink, STAGES, clock=clock)

    def interrupted() -> None:
        with progress.stage("Score", total=10):
            progress.advance(3)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()

    assert sink.payloads[-1]["kind"] == "canceled"
    assert sink.payloads[-1]["error"] is None
    assert stage(sink.payloads[-1], "Score")["status"] == "canceled"
    tags = progress_tags(sink.payloads[-1])
    assert tags == {STAGE_TAG: "canceled in Score", ETA_TAG: ""}
