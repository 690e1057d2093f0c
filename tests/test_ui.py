"""The Dagster UI as a team member uses it: launch an evaluation, read its results, in Chromium.

Screenshots of each page land in test-artifacts/ui/ for a person to look at.
"""

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plexus_dagster.settings import PROJECT_ROOT, PlexusSettings
from tests.integration import browser_page, command_env, dagster_services, postgres_home, run

pytestmark = pytest.mark.integration

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "ui"
RUN_SECONDS = 300


@pytest.fixture(scope="module")
def dagster_ui(
    trained_settings: PlexusSettings, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The UI of a Postgres instance whose storage has banking77's items and models."""
    with postgres_home(tmp_path_factory.mktemp("ui") / "home") as home:
        env = command_env(home, trained_settings.storage_dir, data_dir)
        registered = run(["plexus", "scorecards", "register"], env)
        assert registered.returncode == 0, registered.stderr
        with dagster_services(env) as url:
            yield url


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with browser_page(tmp_path / "profile") as page:
        yield page


def _graphql(url: str, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def _runs(url: str) -> list[dict[str, Any]]:
    query = (
        "{ runsOrError { ... on Runs { results { runId status jobName tags { key value } } } } }"
    )
    return _graphql(url, query)["runsOrError"]["results"]


def _new_run(url: str, before: set[str]) -> str:
    """The ID of the run that a launch added to those in ``before``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        added = [r["runId"] for r in _runs(url) if r["runId"] not in before]
        if added:
            (run_id,) = added
            return str(run_id)
        time.sleep(0.5)
    raise AssertionError("The launch created no run within 60 s")


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _open_launchpad(page: Any, url: str, partition: str) -> Any:
    """Jobs, evaluation_job, the menu beside Materialize, Open launchpad; then the partition."""
    # Dagster asks once per instance, when it likes, whether to join its community.
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
    page.goto(url + "/jobs")
    page.get_by_role("link", name="evaluation_job").first.click()
    page.get_by_role("button", name="Materialize…").wait_for()
    page.locator("button:right-of(:text('Materialize…'))").first.click()
    page.get_by_role("menuitem", name="Open launchpad").click()
    # The evaluation depends on the items of every source; this instance has loaded none.
    confirm = page.get_by_role("button", name="Confirm")
    picker = page.get_by_placeholder("Partition")
    confirm.or_(picker).first.wait_for()
    if confirm.is_visible():
        confirm.click()
    picker.click()
    picker.fill(partition)
    page.get_by_role("menuitem", name=partition, exact=True).click()
    return page.get_by_role("dialog").filter(has=picker)


def _enter_config(launchpad: Any, text: str) -> None:
    """Replaces the text of the Launchpad's editor, as a user pastes it."""
    launchpad.locator(".CodeMirror").click()
    launchpad.page.keyboard.press("Control+A")
    launchpad.page.keyboard.insert_text(text)


def _latest_summary(url: str) -> dict[str, Any]:
    """The summary JSON of the latest evaluation, found through the asset's metadata."""
    query = """{ assetOrError(assetKey: {path: ["evaluation_results"]}) { ... on Asset {
        assetMaterializations(limit: 1) { runId
          metadataEntries { label ... on PathMetadataEntry { path } } } } } }"""
    (latest,) = _graphql(url, query)["assetOrError"]["assetMaterializations"]
    paths = {e["label"]: e.get("path") for e in latest["metadataEntries"]}
    return json.loads(Path(paths["plexus/summary_path"]).read_text())


def _metadata_row(page: Any, label: str) -> Any:
    """The row of the asset page's metadata table whose key is ``label``."""
    return page.locator("tr", has=page.get_by_text(label, exact=True)).first


def test_an_evaluation_launched_from_the_launchpad_shows_its_metrics(
    dagster_ui: str, page: Any
) -> None:
    launchpad = _open_launchpad(page, dagster_ui, "banking77")
    _enter_config(
        launchpad,
        "ops:\n  evaluation_results:\n    config:\n      sample_size: 300\n      seed: 7\n",
    )
    launchpad.get_by_text("No errors").wait_for()
    _shot(page, "01-launchpad")
    before = {r["runId"] for r in _runs(dagster_ui)}
    launchpad.get_by_role("button", name="Materialize").click()
    run_id = _new_run(dagster_ui, before)
    page.goto(f"{dagster_ui}/runs/{run_id}")
    page.get_by_text("Success", exact=True).first.wait_for(timeout=RUN_SECONDS * 1000)
    _shot(page, "02-run")

    page.goto(dagster_ui + "/runs")
    page.get_by_text(run_id[:8]).first.wait_for()
    runs_text = page.inner_text("body")
    _shot(page, "03-runs")

    page.goto(dagster_ui + "/assets/evaluation_results")
    matrix_row = _metadata_row(page, "close_account/confusion_matrix")
    matrix_row.wait_for(timeout=30_000)
    metrics_row = _metadata_row(page, "metrics")
    _shot(page, "04-asset")
    matrix_row.scroll_into_view_if_needed()
    matrix_row.screenshot(path=str(ARTIFACTS / "05-confusion-matrix.png"))
    matrix_text = matrix_row.inner_text()
    metrics_text = metrics_row.inner_text()
    # A partitioned asset's plots put partitions across; "Events" plots one partition's runs.
    page.get_by_role("button", name="Plots").click()
    page.get_by_role("button", name="Events").click()
    page.get_by_text("close_account/f1").first.wait_for()
    _shot(page, "06-plots")

    (run_record,) = [r for r in _runs(dagster_ui) if r["runId"] == run_id]
    assert run_record["status"] == "SUCCESS"
    assert {"key": "dagster/partition", "value": "banking77"} in run_record["tags"]
    assert "plexus/stage: done" in runs_text
    assert "plexus/percent: 100" in runs_text
    summary = _latest_summary(dagster_ui)
    assert summary["task_id"] == run_id
    assert (summary["items"], summary["sample_size"], summary["seed"]) == (300, 300, 7)
    (yes_row, no_row) = summary["scores"]["close_account"]["confusion_matrix"]["matrix"]
    assert "label \\ answer" in matrix_text
    assert f"yes\t{yes_row[0]}\t{yes_row[1]}" in matrix_text
    assert f"no\t{no_row[0]}\t{no_row[1]}" in matrix_text
    intent = summary["scores"]["intent"]
    assert f"intent\t{round(intent['accuracy'], 4):g}" in metrics_text


def test_bad_config_is_refused_in_the_launchpad(dagster_ui: str, page: Any) -> None:
    before = len(_runs(dagster_ui))
    launchpad = _open_launchpad(page, dagster_ui, "banking77")
    launch = launchpad.get_by_role("button", name="Materialize")

    _enter_config(launchpad, "ops:\n  evaluation_results:\n    config:\n      seed: abc\n")
    type_error = launchpad.get_by_text('Value "abc" of type')
    type_error.wait_for()
    _shot(page, "07-launchpad-type-error")
    assert "config:seed" in type_error.inner_text()
    assert launch.is_disabled()

    _enter_config(
        launchpad,
        "ops:\n  evaluation_results:\n    config:\n      sample_size: -5\n"
        "      max_error_share: 3\n",
    )
    launchpad.get_by_text("No errors").wait_for()
    launch.click()
    dialog = page.get_by_role("dialog").filter(has_text="no run was started")
    dialog.get_by_role("button", name="OK").wait_for()
    page.wait_for_timeout(500)  # the dialog fades in
    _shot(page, "08-launchpad-refused")
    refusal = dialog.inner_text()

    assert "sample_size = -5: Input should be greater than 0" in refusal
    assert "max_error_share = 3.0: Input should be less than or equal to 1" in refusal
    assert len(_runs(dagster_ui)) == before
