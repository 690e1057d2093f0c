"""The project's Dagster instance: DAGSTER_HOME, or .dagster_home in the project by default."""

import os
import shutil
from pathlib import Path

import dagster as dg

from plexus_dagster.settings import PROJECT_ROOT

DEFAULT_HOME = PROJECT_ROOT / ".dagster_home"
INSTANCE_TEMPLATE = PROJECT_ROOT / "dagster.yaml"


def ensure_dagster_home() -> Path:
    """Creates the instance folder with the project's dagster.yaml when it does not exist yet.

    Sets DAGSTER_HOME for this process when it was unset, so every later call finds the same
    instance.
    """
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and INSTANCE_TEMPLATE.exists():
        shutil.copyfile(INSTANCE_TEMPLATE, config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def project_instance() -> dg.DagsterInstance:
    """The instance the UI shows, created on first use."""
    ensure_dagster_home()
    return dg.DagsterInstance.get()
