"""An evaluation whose worker is killed mid-run is retried elsewhere and scores only the rest."""

import re
import shutil
import signal
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from plexus_dagster.keys import WORKER_TAG
from plexus_dagster.scorecards.partitions import register_scorecards
from plexus_dagster.settings import PROJECT_ROOT, PlexusSettings
from tests.workers.deployment import deployment

pytestmark = pytest.mark.integration


def test_an_evaluation_survives_the_sigkill_of_its_worker(
    trained_settings: PlexusSettings, tmp_path: Path
) -> None:
    # The banking77 scorecard over its 10,003 training items: long enough to be killed mid-way.
    # The key stays banking77, so the session's trained models serve it.
    scorecards = tmp_path / "scorecards"
    scorecards.mkdir()
    text = (PROJECT_ROOT / "scorecards" / "banking77.yaml").read_text()
    (scorecards / "banking77.yaml").write_text(
        text.replace("source: banking77_test", "source: banking77_train")
    )
    storage = tmp_path / "storage"
    shutil.copytree(trained_settings.storage_dir, storage)
    env = {
        "PLEXUS_DATA_DIR": str(trained_settings.data_dir),
        "PLEXUS_SCORECARDS_DIR": str(scorecards),
        "PLEXUS_STORAGE_DIR": str(storage),
    }
    with deployment(tmp_path / "pool", env, PROJECT_ROOT / "workspace.yaml") as pool:
        register_scorecards(pool.instance, ["banking77"])
        pool.start_worker("first", "data:banking77")
        pool.start_worker("second", "data:banking77")
        run_id = pool.submit(
            "evaluation_job",
            partition="banking77",
            run_config={"ops": {"evaluation_results": {"config": {}}}},
        )

        # Killed once its first batches are stored: scoring has begun and is not done.
        checkpoint = storage / "checkpoints" / "banking77" / run_id
        pool.wait(lambda: any(checkpoint.glob("part-*.parquet")), 240, "the first stored batch")
        holder = pool.run(run_id).tags[WORKER_TAG]
        pool.kill_worker(holder, signal.SIGKILL)

        assert pool.wait_finished(run_id, timeout=90).status == dg.DagsterRunStatus.FAILURE
        retry = pool.wait(
            lambda: pool.instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run_id})),
            60,
            "the retry",
        )[0]
        retried = pool.wait_finished(retry.run_id, timeout=300)
        assert retried.status == dg.DagsterRunStatus.SUCCESS, pool.logs()
        assert retried.tags[WORKER_TAG] != holder

        messages = "\n".join(
            record.event_log_entry.message
            for record in pool.instance.get_records_for_run(retry.run_id).records
        )
    resumed = re.search(r"(\d+) items were scored before it was lost", messages)
    assert resumed is not None, messages[-3000:]
    assert 0 < int(resumed.group(1)) < 10003
    results = pd.read_parquet(
        storage / "evaluations" / "banking77" / retry.run_id / "results.parquet"
    )
    assert results["item_id"].nunique() == 10003
    assert len(results) == 10003 * 7
    assert not results.duplicated(["item_id", "score_key"]).any()
    assert not (storage / "checkpoints" / "banking77" / run_id).exists()
