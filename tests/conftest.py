"""Shared fixtures: the real data folder, isolated storage, and banking77 trained once."""

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from plexus_dagster.definitions import build_definitions
from plexus_dagster.settings import PROJECT_ROOT, PlexusSettings
from plexus_dagster.tasks.runs import TaskRunner


def _data_dir() -> Path:
    configured = os.environ.get("PLEXUS_DATA_DIR")
    return Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "data"


def pytest_sessionstart(session: pytest.Session) -> None:
    folder = _data_dir()
    if not (folder / "banking77" / "test.csv").is_file():
        pytest.exit(
            f"The tests read the real labelled data and found none in {folder}. "
            "Set PLEXUS_DATA_DIR to the folder holding banking77/ and twacs/.",
            returncode=4,
        )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _data_dir()


def make_settings(data_dir: Path | None, storage: Path, **overrides: Path) -> PlexusSettings:
    return PlexusSettings(
        data_dir=data_dir,
        sources_dir=overrides.get("sources_dir", PROJECT_ROOT / "sources"),
        scorecards_dir=overrides.get("scorecards_dir", PROJECT_ROOT / "scorecards"),
        storage_dir=storage,
    )


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> PlexusSettings:
    """Project sources and scorecards, real data, storage in a fresh folder."""
    return make_settings(data_dir, tmp_path / "storage")


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A Dagster instance of its own for each test, in a temporary folder."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def runner(settings: PlexusSettings, instance: dg.DagsterInstance) -> TaskRunner:
    """Runs the project's jobs in this process, with every scorecard registered."""
    runner = TaskRunner(build_definitions(settings), instance)
    runner.register(runner.plexus.scorecards())
    return runner


@pytest.fixture(scope="session")
def trained_settings(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlexusSettings]:
    """Storage where every source's items are loaded and banking77 is trained, once a session."""
    settings = make_settings(data_dir, tmp_path_factory.mktemp("trained") / "storage")
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        runner = TaskRunner(defs, instance)
        scorecards = defs.resources["plexus"].scorecards()
        runner.register(scorecards)
        runner.ensure_items(sorted(defs.resources["plexus"].sources()))
        runner.train(scorecards["banking77"])
        yield settings


@pytest.fixture(scope="session")
def banking77_evaluation(trained_settings: PlexusSettings) -> dict[str, object]:
    """The summary of one full banking77 evaluation, run once a session."""
    defs = build_definitions(trained_settings)
    with dg.instance_for_test() as instance:
        runner = TaskRunner(defs, instance)
        scorecards = defs.resources["plexus"].scorecards()
        runner.register(scorecards)
        _, summary = runner.evaluate(scorecards["banking77"])
    return summary
